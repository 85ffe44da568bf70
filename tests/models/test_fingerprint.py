"""Content fingerprints of model folders, their per-file digest cache, and hub ids by commit."""

from __future__ import annotations

import json
import os

import pytest

from tis.core.errors import ConfigError
from tis.core.hashing import DigestCache, HashStats, fingerprint_path, hash_file, model_files
from tis.models.local import locate, resolve_hub_commit

OLD = 1_600_000_000  # a file time well in the past: not "racy", so its digest is cached


def make_model(folder, *, weights=b"\x00" * 4096, age=True):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llava"}))
    (folder / "model.safetensors").write_bytes(weights)
    (folder / "tokenizer.json").write_text('{"version": "1.0"}')
    (folder / "chat_template.jinja").write_text("{{ messages }}")
    if age:
        for f in folder.iterdir():
            os.utime(f, (OLD, OLD))
    return folder


def rewrite_in_place(path, offset, data):
    """Overwrite bytes inside a file (same size, same path, same inode), then give it back its mtime."""
    st = os.stat(path)
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_ino, after.st_mtime_ns) == (st.st_size, st.st_ino, st.st_mtime_ns)


def test_same_size_content_change_is_a_new_fingerprint_even_with_the_old_mtime(tmp_path):
    cache = DigestCache(tmp_path / "cache.sqlite")
    model = make_model(tmp_path / "m")
    before = fingerprint_path(model, cache=cache)
    assert fingerprint_path(model, cache=cache) == before
    rewrite_in_place(model / "model.safetensors", 100, b"\x01")
    stats = HashStats()
    after = fingerprint_path(model, cache=cache, stats=stats)
    assert after != before
    assert stats.hashed == ["model.safetensors"]  # ctime changed: only that file is read again


def test_an_unchanged_folder_is_answered_from_the_cache_without_reading_files(tmp_path):
    cache = DigestCache(tmp_path / "cache.sqlite")
    model = make_model(tmp_path / "m")
    first = HashStats()
    digest = fingerprint_path(model, cache=cache, stats=first)
    assert first.hashed_files == first.files == 4 and first.hashed_bytes > 4096
    again = HashStats()
    assert fingerprint_path(model, cache=cache, stats=again) == digest
    assert (again.hashed_files, again.cached_files) == (0, 4)
    # a new mtime (touch) re-hashes that file only; the content, hence the fingerprint, is the same
    os.utime(model / "tokenizer.json", (OLD + 10, OLD + 10))
    touched = HashStats()
    assert fingerprint_path(model, cache=cache, stats=touched) == digest
    assert touched.hashed == ["tokenizer.json"]
    # the cache lives on: a new DigestCache on the same file still answers
    reopened = HashStats()
    assert fingerprint_path(model, cache=DigestCache(tmp_path / "cache.sqlite"), stats=reopened) == digest
    assert reopened.hashed_files == 0


def test_a_file_written_just_now_is_not_trusted_to_the_cache(tmp_path):
    cache = DigestCache(tmp_path / "cache.sqlite")
    model = make_model(tmp_path / "m", age=False)  # mtimes are now: a same-tick rewrite could hide
    fingerprint_path(model, cache=cache)
    stats = HashStats()
    fingerprint_path(model, cache=cache, stats=stats)
    assert stats.hashed_files == 4


def test_default_cache_is_under_the_tis_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TIS_CACHE_DIR", str(tmp_path / "tis-cache"))
    model = make_model(tmp_path / "m")
    fingerprint_path(model)
    assert (tmp_path / "tis-cache" / "fingerprints.sqlite").is_file()
    stats = HashStats()
    fingerprint_path(model, stats=stats)
    assert stats.hashed_files == 0


def test_an_unusable_cache_only_costs_speed(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    model = make_model(tmp_path / "m")
    stats = HashStats()
    assert fingerprint_path(model, cache=DigestCache(blocker / "cache.sqlite"), stats=stats) == \
        fingerprint_path(model, cache=False)
    assert stats.hashed_files == 4


def test_identity_is_content_not_place_and_covers_every_model_file(tmp_path):
    a = make_model(tmp_path / "a")
    b = make_model(tmp_path / "elsewhere" / "b")
    assert fingerprint_path(a, cache=False) == fingerprint_path(b, cache=False)
    # files that do not change what the model computes are left out
    (b / "README.md").write_text("notes")
    (b / "trainer_state.json").write_text("{}")
    (b / "training_manifest.json").write_text('{"output": {"fingerprint": "..."}}')
    (b / "checkpoint-10").mkdir()
    (b / "checkpoint-10" / "model.safetensors").write_bytes(b"1")
    assert fingerprint_path(b, cache=False) == fingerprint_path(a, cache=False)
    assert [p.name for p in model_files(b)] == ["chat_template.jinja", "config.json", "model.safetensors",
                                                "tokenizer.json"]
    # a processor file and an adapter's files are covered
    (b / "preprocessor_config.json").write_text("{}")
    assert fingerprint_path(b, cache=False) != fingerprint_path(a, cache=False)
    c = make_model(tmp_path / "c")
    (c / "chat_template.jinja").write_text("{{ other }}")
    assert fingerprint_path(c, cache=False) != fingerprint_path(a, cache=False)


def test_hash_file_is_sha256_of_the_content(tmp_path):
    import hashlib

    f = tmp_path / "w.bin"
    data = os.urandom(9 * 1024 * 1024 + 7)  # more than one 8 MiB chunk
    f.write_bytes(data)
    assert hash_file(f) == hashlib.sha256(data).hexdigest()


# -- hub ids ------------------------------------------------------------------------------------

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def fake_hub_download(cache, repo_id, commit, files=None):
    """The hub cache layout huggingface_hub writes: blobs, snapshots/COMMIT/* links, refs/main."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for name, text in (files or {"config.json": '{"model_type": "llava"}'}).items():
        blob = repo / "blobs" / f"blob-{name}"
        blob.write_text(text)
        (snap / name).symlink_to(os.path.relpath(blob, snap))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snap


def test_hub_id_is_its_commit_before_and_after_download(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # not downloaded, pinned to a commit: resolved without any network access
    before = locate("org/tiny-vlm", revision=COMMIT)
    assert before.identity() == {"hub": "org/tiny-vlm", "commit": COMMIT} and before.folder is None
    snap = fake_hub_download(tmp_path / "hub", "org/tiny-vlm", COMMIT)
    pinned = locate("org/tiny-vlm", revision=COMMIT)
    by_branch = locate("org/tiny-vlm")  # refs/main names the commit
    assert pinned.identity() == by_branch.identity() == before.identity()
    assert by_branch.folder == snap and by_branch.source() == str(snap)


def test_hub_id_not_downloaded_offline_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="org/absent.*not in the Hugging Face cache.*HF_HUB_OFFLINE"):
        resolve_hub_commit("org/absent")


def test_adapter_folder_finds_its_base_and_is_identified_with_it(tmp_path):
    base = make_model(tmp_path / "base")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(base),
                                                             "peft_type": "LORA"}))
    (adapter / "adapter_model.safetensors").write_bytes(b"\x02" * 64)
    loc = locate(str(adapter))
    assert loc.is_adapter and loc.base is not None and loc.base.folder == base.resolve()
    ident = loc.identity()
    assert ident["base"] == {"fingerprint": fingerprint_path(base, cache=False)}
    assert ident["fingerprint"] == fingerprint_path(adapter, cache=False)
    # the base is part of the identity: the same adapter on another base is another model
    other = make_model(tmp_path / "other-base", weights=b"\x03" * 4096)
    assert locate(str(adapter), base=str(other)).identity() != ident
    # no base named anywhere: a clear error pointing at --base
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    with pytest.raises(ConfigError, match="names no base model.*--base"):
        locate(str(adapter))
    with pytest.raises(ConfigError, match="--base .*applies to a PEFT adapter"):
        locate(str(base), base=str(other))
