"""The prompt block list: disguised terms are still found, ordinary words that merely contain a
term are not, matching stays fast on hostile prompts, and a refused submission is answered 422
`prompt_refused` before anything is stored, counted per account, and editable by admins (admin
page and CLI)."""

from __future__ import annotations

import re
import subprocess
import time

import pytest

from aiedit.auth import blocklist
from aiedit.auth.blocklist import BlocklistError, Matcher, term_key
from aiedit.auth.keys import create_key
from aiedit.store.models import Job
from tests.helpers import AIEDIT_BIN, box_mask, noise_image, png_bytes, submit
from tests.privacy.conftest import user_with_key


@pytest.mark.parametrize("prompt", [
    "a nude figure",
    "a NUDE figure",
    "a N.u.d.e figure",
    "a n u d e figure",
    "a nu-de figure",
    "a nu\u200bde figure",                 # zero-width space between letters
    "a ｎｕｄｅ figure",                    # full-width letters (NFKC)
    "a nüdé figure",                       # accents
    "a nu\u0308de figure",                 # combining diaeresis
    "a nudе figure",                       # Cyrillic е
    "a ｎ ｕ ｄ ｅ figure",
    "A Nude",
    "a nud3 figure",                       # digits for letters
    "a N-U-D-3 figure",
])
def test_disguised_terms_are_found(prompt):
    assert Matcher([term_key("nude")]).find(prompt) == "nude"


@pytest.mark.parametrize("prompt", [
    "a crude figure", "denuded hills", "a nudibranch", "a nu delta", "nu, wait: nudge",
])
def test_words_that_only_contain_a_term_are_not_refused(prompt):
    assert Matcher([term_key("nude")]).find(prompt) is None


def test_signs_for_letters_are_read_as_letters_but_numbers_stay_numbers():
    match = Matcher([term_key("ass"), term_key("sex")])
    assert match.find("an @ss") == "ass"
    assert match.find("a$$") == "ass"
    assert match.find("s3x, 5ex") == "sex"
    assert match.find("class of 1955, 4k, 3d render") is None


def test_prefix_terms_and_phrases():
    match = Matcher([term_key("nude*"), term_key("Bad Thing")])
    assert match.find("three nudes") == "nude*"
    assert match.find("n.u.d.i.s.t beach") is None
    assert match.find("a BAD-thing here") == "badthing"
    assert match.find("a bad, thing") == "badthing"
    assert match.find("badthings") is None


def test_scripts_without_spaces_match_inside_text():
    assert Matcher([term_key("裸体")]).find("一个裸体的人") == "裸体"


def test_terms_are_plain_text_with_bounded_size():
    assert term_key("  (a+)+$ ") == "a"  # regex syntax is just punctuation here
    for bad in ("", "   ", "***", "x" * 201):
        with pytest.raises(BlocklistError):
            term_key(bad)
    with pytest.raises(BlocklistError):
        term_key("y" * 65)


def test_matching_stays_fast_on_a_hostile_prompt():
    terms = [term_key("a" * 63 + "b"), *(term_key(f"word{i}*") for i in range(2000))]
    match = Matcher(terms)
    prompt = ("a " * 1999) + "a"  # 2000 one-letter words: every start joins up to 64 of them
    started = time.perf_counter()
    assert match.find(prompt) is None
    assert time.perf_counter() - started < 2.0  # a backtracking regex would take ages


def _submit(client, headers, prompt):
    image = png_bytes(noise_image(32, 32))
    mask = png_bytes(box_mask(32, 32, (8, 8, 24, 24)))
    return submit(client, "inpaint", {"image": image, "mask": mask}, headers=headers,
                  model="classic-telea", params={"prompt": prompt})


def test_a_refused_prompt_is_answered_422_before_anything_is_stored(papp, services):
    client = papp.test_client()
    alice, _ = user_with_key(services, "alice")
    blocklist.add_term(services.db, "forbidden thing")
    prompt = "a quiet street with a FORBIDDEN-thing in it, secret-detail-4711"
    resp = _submit(client, alice, prompt)
    body = resp.get_json()
    assert resp.status_code == 422 and body["code"] == "prompt_refused"
    assert body["errors"] == {"params": {"prompt": ["refused by the block list"]}}
    text = resp.get_data(as_text=True).lower()
    assert "secret-detail" not in text and "forbidden" not in text and "street" not in text
    with services.db.session() as s:
        assert s.query(Job).count() == 0
    assert services.blobs.job_ids() == []
    assert blocklist.refusals(services.db)["alice"].count == 1
    assert _submit(client, alice, "n.o t  forbidden, a thing").status_code == 202
    _submit(client, alice, "another forbidden thing")
    assert blocklist.refusals(services.db)["alice"].count == 2


def test_admins_edit_the_list_on_the_admin_page_and_see_refusals(papp, services):
    client = papp.test_client()
    _, admin_key = create_key(services.db, "ops", "admin")
    bob, _ = user_with_key(services, "bob")
    page = client.get("/admin")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    client.post("/admin/login", data={"key": admin_key, "csrf_token": token})
    page = client.get("/admin")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    assert "No term is blocked" in page.text

    refused = client.post("/admin/blocklist", data={"action": "add", "term": "Gore*"})
    assert refused.status_code == 403, "a form without the session's CSRF token"
    resp = client.post("/admin/blocklist",
                       data={"action": "add", "term": "Gore*", "csrf_token": token})
    assert resp.status_code == 303
    assert [t.key for t in blocklist.list_terms(services.db)] == ["gore*"]
    assert _submit(client, bob, "so much g.o.r.e.y detail").status_code == 422
    page = client.get("/admin")
    row = re.search(r'<table id="refusals">.*?</table>', page.text, re.S).group(0)
    assert "bob" in row and '<td class="num">1</td>' in row

    bad = client.post("/admin/blocklist", data={"action": "add", "term": "!!", "csrf_token": token})
    assert bad.status_code == 422 and "no letters or digits" in bad.text
    client.post("/admin/blocklist", data={"action": "remove", "term": "gore*", "csrf_token": token})
    assert blocklist.list_terms(services.db) == []
    assert _submit(client, bob, "so much gorey detail").status_code == 202


def test_the_cli_adds_lists_and_removes_terms(tmp_path):
    data = tmp_path / "cli-data"

    def run(*args):
        return subprocess.run([str(AIEDIT_BIN), "blocklist", *args, "--data-dir", str(data)],
                              capture_output=True, text=True, timeout=120)

    added = run("add", "Ｓｐａｍ", "eggs*")
    assert added.returncode == 0, added.stderr
    assert "matched as spam" in added.stdout and "matched as eggs*" in added.stdout
    again = run("add", "SPAM")
    assert again.returncode == 1 and "already on the block list" in again.stderr
    listed = run("list")
    assert re.search(r"^eggs\*\s+eggs\*$", listed.stdout, re.M)
    assert re.search(r"^spam\s+Ｓｐａｍ$", listed.stdout, re.M)
    assert run("remove", "spam").returncode == 0
    assert "spam" not in run("list").stdout
    missing = run("remove", "spam")
    assert missing.returncode == 1 and "not on the block list" in missing.stderr
