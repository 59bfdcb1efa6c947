"""`aiedit credits grant | show | ceiling`: every change a ledger row with its reason."""

from __future__ import annotations

from click.testing import CliRunner

from aiedit.cli import main


def run(tmp_path, *args):
    return CliRunner().invoke(main, [*args, "--data-dir", str(tmp_path / "data")],
                              catch_exceptions=False)


def test_grant_show_and_ceiling(tmp_path):
    assert run(tmp_path, "users", "create", "ann").exit_code == 0
    granted = run(tmp_path, "credits", "grant", "ann", "10", "--reason", "welcome")
    assert granted.exit_code == 0 and "ann: +10 credits (welcome); balance 10" in granted.output
    refused = run(tmp_path, "credits", "grant", "ann", "-11", "--reason", "correction")
    assert refused.exit_code == 1
    assert "cannot take 11 credits: the balance is 10 and never goes below 0" in refused.output
    no_reason = run(tmp_path, "credits", "grant", "ann", "5")
    assert no_reason.exit_code == 2 and "--reason" in no_reason.output
    unknown = run(tmp_path, "credits", "grant", "bob", "5", "--reason", "x")
    assert unknown.exit_code == 1 and "no user 'bob'" in unknown.output
    assert "daily ceiling 25" in run(tmp_path, "credits", "ceiling", "ann", "25").output
    shown = run(tmp_path, "credits", "show", "ann").output
    assert "ann: balance 10, held 0, daily ceiling 25" in shown
    assert "grant" in shown and "+10  welcome" in shown
    assert "server default" in run(tmp_path, "credits", "ceiling", "ann", "-1").output
