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
