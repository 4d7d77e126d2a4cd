"""The host record: read from /proc/cpuinfo, flags a subset of what the CPU reports."""

from nlpcurriculum.metrics import hardware


def test_host_records_the_vector_flags_the_cpu_reports_in_a_fixed_order():
    record = hardware.host()
    flags = hardware.cpu_flags()
    assert record["vector_flags"] == [f for f in hardware.VECTOR_FLAGS if f in flags]
    assert record["cores"] >= 1 and record["torch_threads"] >= 1


def test_native_bf16_follows_the_flags(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    assert not hardware.has_native_bf16()
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2", "avx512_bf16"}))
    assert hardware.has_native_bf16()


def test_cache_sizes_read_data_and_unified_caches_and_skip_instruction_caches(tmp_path):
    for i, (level, kind, size) in enumerate([("1", "Data", "48K"), ("1", "Instruction", "64K"),
                                             ("2", "Unified", "2048K"), ("3", "Unified", "32M")]):
        folder = tmp_path / "cache" / f"index{i}"
        folder.mkdir(parents=True)
        for name, text in (("level", level), ("type", kind), ("size", size)):
            (folder / name).write_text(text + "\n")
    assert hardware.cache_sizes(str(tmp_path)) == {"L1d": 48 * 1024, "L2": 2 * 1024 ** 2, "L3": 32 * 1024 ** 2}
    assert hardware.cache_sizes(str(tmp_path / "absent")) == {}
