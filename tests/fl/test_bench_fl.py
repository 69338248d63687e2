"""`fedcore bench fl --fraction` runs end to end on a tiny federation (no speed asserts)."""

import argparse

from fedcore.bench import fl


def test_sampled_rows_beside_every_party() -> None:
    parser = argparse.ArgumentParser()
    fl.add_arguments(parser)
    result = fl.run(parser.parse_args(["--parties", "6", "--rounds", "2", "--fraction", "0.5"]))
    sampled, everyone = result["rows"]
    assert sampled["run"] == "fraction 0.5" and sampled["parties/round"] == 3
    assert everyone["parties/round"] == 6 and everyone["failed parties"] == 0
    assert sampled["peak MiB"] > 10 and result["every party / sampled, s/round x"] > 0
