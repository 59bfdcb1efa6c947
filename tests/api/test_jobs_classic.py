"""Classic operations through the jobs API: results a user can check."""

import numpy as np

from tests.helpers import box_mask, decode_png, noise_image, png_bytes, submit, wait_finished


def test_inpaint_changes_only_the_masked_pixels(client):
    image = noise_image(200, 150)
    mask = box_mask(200, 150, (60, 40, 120, 100))
    resp = submit(
        client,
        "inpaint",
        {"image": png_bytes(image), "mask": png_bytes(mask)},
        region={"x": 30, "y": 20, "width": 200, "height": 150},
        params={"feather": 0},
    )
    assert resp.status_code == 202, resp.get_json()
    job = wait_finished(client, resp.get_json()["id"])
    assert job["state"] == "succeeded", job
    assert job["model"] == "classic-telea"
    result = job["results"][0]
    assert result["offset"] == {"x": 30, "y": 20}
    assert (result["width"], result["height"]) == (200, 150)
    out = decode_png(client.get(result["url"]).data)
    outside = mask == 0
    assert np.array_equal(out[outside], image[outside])
    assert not np.array_equal(out[mask > 0], image[mask > 0])


def test_soft_mask_edges_blend_and_zero_stays_identical(client):
    """A partial mask value m gives original·(1 − m/255) + fill·m/255, where fill is what a
    full mask over the same area paints."""
    image = noise_image(64, 64, seed=3)

    def inpaint(mask):
        job_id = submit(
            client,
            "inpaint",
            {"image": png_bytes(image), "mask": png_bytes(mask)},
            params={"feather": 0},
        ).get_json()["id"]
        job = wait_finished(client, job_id)
        assert job["state"] == "succeeded", job
        return decode_png(client.get(job["results"][0]["url"]).data)

    full = np.zeros((64, 64), np.uint8)
    full[16:48, 16:48] = 255
    soft = np.zeros((64, 64), np.uint8)
    soft[16:48, 16:48] = np.linspace(8, 247, 32).round().astype(np.uint8)[None, :]
    soft[30:34, 16:48] = 255
    fill, out = inpaint(full), inpaint(soft)

    assert np.array_equal(out[soft == 0], image[soft == 0])
    assert np.array_equal(out[soft == 255], fill[soft == 255])
    partial = (soft > 0) & (soft < 255)
    weight = soft.astype(np.float64)[..., None] / 255.0
    expected = image * (1.0 - weight) + fill.astype(np.float64) * weight
    error = np.abs(out.astype(np.float64) - expected)[partial]
    assert error.max() <= 1.0, f"partial-mask pixels are off the blend by up to {error.max()}"
    # the blend is visible: partial pixels are neither the original nor the fill
    differs = fill[partial][:, :3] != image[partial][:, :3]
    assert differs.mean() > 0.9, "the fill must differ from the original for this test"
    low = partial & (soft < 100)
    high = partial & (soft > 155)
    assert np.abs(out[low].astype(int) - image[low]).mean() < np.abs(
        out[low].astype(int) - fill[low]).mean()
    assert np.abs(out[high].astype(int) - fill[high]).mean() < np.abs(
        out[high].astype(int) - image[high]).mean()


def test_upscale_doubles_the_size_with_lanczos(client):
    image = noise_image(120, 80)
    job_id = submit(
        client,
        "upscale",
        {"image": png_bytes(image)},
        region={"x": 10, "y": 5, "width": 120, "height": 80},
        params={"scale": 2},
        model="classic-lanczos",
    ).get_json()["id"]
    job = wait_finished(client, job_id)
    assert job["state"] == "succeeded", job
    result = job["results"][0]
    assert (result["width"], result["height"]) == (240, 160)
    assert result["offset"] == {"x": 20, "y": 10}
    out = decode_png(client.get(result["url"]).data)
    assert out.shape == (160, 240, 4)
    assert job["progress"]["fraction"] == 1.0


def test_restore_reduces_noise(client):
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:128, 0:128]
    clean = np.dstack(
        [(xx * 2) % 256, (yy * 2) % 256, ((xx + yy) % 256), np.full((128, 128), 255)]
    ).astype(np.uint8)
    noisy = clean.copy()
    noisy[..., :3] = np.clip(clean[..., :3] + rng.normal(0, 20, (128, 128, 3)), 0, 255)
    job_id = submit(
        client, "restore", {"image": png_bytes(noisy)}, params={"strength": 0.6}
    ).get_json()["id"]
    job = wait_finished(client, job_id)
    out = decode_png(client.get(job["results"][0]["url"]).data)
    before = np.abs(noisy[..., :3].astype(int) - clean[..., :3]).mean()
    after = np.abs(out[..., :3].astype(int) - clean[..., :3]).mean()
    assert after < before * 0.7, (before, after)


def test_outpaint_grows_the_canvas_and_moves_the_offset(client):
    image = noise_image(50, 40)
    job_id = submit(
        client,
        "outpaint",
        {"image": png_bytes(image)},
        region={"x": 100, "y": 100, "width": 50, "height": 40},
        params={"left": 10, "top": 5, "right": 20, "bottom": 0},
    ).get_json()["id"]
    job = wait_finished(client, job_id)
    result = job["results"][0]
    assert (result["width"], result["height"]) == (80, 45)
    assert result["offset"] == {"x": 90, "y": 95}
    out = decode_png(client.get(result["url"]).data)
    assert np.array_equal(out[5:45, 10:60], image)


def test_raw_rgba_download_has_size_headers(client):
    image = noise_image(30, 20)
    job_id = submit(
        client,
        "upscale",
        {"image": png_bytes(image)},
        params={"scale": 1.5},
        model="classic-lanczos",
    ).get_json()["id"]
    job = wait_finished(client, job_id)
    resp = client.get(job["results"][0]["url"] + "?format=rgba")
    assert resp.status_code == 200
    width, height = int(resp.headers["X-Image-Width"]), int(resp.headers["X-Image-Height"])
    assert (width, height) == (45, 30)
    assert len(resp.data) == width * height * 4
    png = decode_png(client.get(job["results"][0]["url"]).data)
    assert np.array_equal(np.frombuffer(resp.data, np.uint8).reshape(height, width, 4), png)


def test_raw_rgba_upload_is_accepted(client):
    image = noise_image(40, 30)
    mask = box_mask(40, 30, (10, 10, 20, 20))
    resp = submit(
        client,
        "inpaint",
        {"image": image.tobytes(), "mask": mask.tobytes()},
        raw={"image": {"width": 40, "height": 30}, "mask": {"width": 40, "height": 30}},
    )
    assert resp.status_code == 202, resp.get_json()
    job = wait_finished(client, resp.get_json()["id"])
    out = decode_png(client.get(job["results"][0]["url"]).data)
    assert np.array_equal(out[mask == 0], image[mask == 0])


def test_other_formats_and_missing_result(client):
    job_id = submit(
        client, "upscale", {"image": png_bytes(noise_image(16, 16))}, model="classic-lanczos"
    ).get_json()["id"]
    job = wait_finished(client, job_id)
    url = job["results"][0]["url"]
    assert client.get(url + "?format=jpeg").headers["Content-Type"] == "image/jpeg"
    assert client.get(url + "?format=webp").headers["Content-Type"] == "image/webp"
    assert client.get(url + "?format=gif").status_code == 422
    assert client.get(url + "?format=mp4").status_code == 422
    assert client.get(f"/v1/jobs/{job_id}/results/5").status_code == 404
