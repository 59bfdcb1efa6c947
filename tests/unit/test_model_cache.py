"""The model cache: loads once, evicts least recently used models when room runs short."""

from aiedit.engines.cache import LoadedModel, ModelCache
from aiedit.engines.catalog import ModelEntry


def entry(model_id: str, memory: int) -> ModelEntry:
    return ModelEntry(id=model_id, name=model_id, operations=("upscale",), engine="classic",
                      memory=memory)


def make_cache(**kwargs):
    loaded, evicted = [], []

    def loader(e, device):
        loaded.append(e.id)
        return LoadedModel(entry=e, engine="classic", obj=object(), device=device,
                           size_bytes=e.memory)

    cache = ModelCache(loader, on_evict=lambda m: evicted.append(m.entry.id), **kwargs)
    return cache, loaded, evicted


def test_a_warm_model_is_not_loaded_again():
    cache, loaded, _ = make_cache()
    a = entry("a", 10)
    assert cache.get(a, "cpu") is cache.get(a, "cpu")
    assert loaded == ["a"] and cache.loads == 1


def test_byte_budget_evicts_the_least_recently_used():
    cache, _, evicted = make_cache(max_bytes=25)
    a, b, c = entry("a", 10), entry("b", 10), entry("c", 10)
    cache.get(a, "cpu")
    cache.get(b, "cpu")
    cache.get(a, "cpu")  # a is now the most recent
    cache.get(c, "cpu")
    assert evicted == ["b"]
    assert {m.entry.id for m in cache.loaded()} == {"a", "c"}


def test_short_device_memory_evicts_until_the_next_model_fits():
    free = {"bytes": 15}
    evicted = []

    def evict(model):
        evicted.append(model.entry.id)
        free["bytes"] += model.size_bytes

    def loader(e, device):
        free["bytes"] -= e.memory
        return LoadedModel(entry=e, engine="classic", obj=object(), device=device,
                           size_bytes=e.memory)

    cache = ModelCache(loader, on_evict=evict, free_memory=lambda device: free["bytes"])
    cache.get(entry("a", 10), "cuda:0")
    cache.get(entry("b", 10), "cuda:0")
    assert evicted == ["a"], "5 bytes free is not room for b until a goes"
    cache.get(entry("c", 1), "cuda:0")
    assert evicted == ["a"], "c fits beside b"
