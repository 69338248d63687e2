"""`fedcore bench paillier` runs end to end on tiny sizes and reports every row (no speed asserts)."""

import argparse

from fedcore.bench import paillier


def test_bench_reports_rows_and_a_correct_sum():
    parser = argparse.ArgumentParser()
    paillier.add_arguments(parser)
    args = parser.parse_args(
        [
            *("--dim", "300", "--bits", "512", "--workers", "2"),
            *("--phe-sample", "3", "--unpacked-sample", "20", "--per-core-sample", "10"),
        ]
    )
    result = paillier.run(args)
    operations = [row["operation"] for row in result["rows"]]
    assert operations[:4] == [
        "encrypt (packed)",
        "add (packed)",
        "decrypt (packed, CRT)",
        "end-to-end 3-party encrypt-sum-decrypt",
    ]
    versus_phe = [row for row in result["rows"] if "phe basis" in row]
    assert all("scaled" in row["phe basis"] for row in versus_phe)
    assert all(row["speedup"] > 0 for row in versus_phe)
    assert result["max_abs_error_of_sum"] <= 3 * 2.0**-21
    per_cpu = result["cpu_time_basis (robust to a loaded machine)"]
    assert per_cpu["phe_e2e_values_per_cpu_second (sampled, scaled)"] > 0
    assert operations[5].startswith("decrypt (packed, CRT) in 1 process")
    per_core = result["per_core"]["ciphertexts_per_core_second"]  # round trips checked inside the bench
    assert sorted(per_core) == sorted(
        f"{op} ({mode}{how})"
        for mode in ("unpacked", "packed")
        for op, how in (("encrypt", ", public key"), ("encrypt", ", key owner, CRT"), ("decrypt", ", CRT"))
    )
    assert all(rate > 0 for rate in per_core.values())
    assert operations[-6:] == list(per_core)
    assert all(row["values/s per core"] >= row["ct/s per core (CPU)"] for row in result["rows"][-6:])
    assert result["decrypt_speedup_runtime_vs_inline"] > 0  # inline result checked equal inside the bench
