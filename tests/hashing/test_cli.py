from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from vigil.hashing.cli import bank_group, hash_command, match_command
from vigil.hashing.hashers import pdq_image

from .images import encode, photo


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"VIGIL_BANKS": str(tmp_path / "db" / "banks.sqlite")}


@pytest.fixture
def image_file(tmp_path: Path) -> Path:
    path = tmp_path / "known.png"
    path.write_bytes(encode(photo(31, (400, 300))))
    return path


def test_hash_command(image_file: Path) -> None:
    result = CliRunner().invoke(hash_command, [str(image_file)])
    assert result.exit_code == 0, result.output
    lines = [line.split("\t") for line in result.output.splitlines()]
    assert [line[1] for line in lines] == ["pdq", "md5", "sha256"]
    assert lines[0][2] == pdq_image(photo(31, (400, 300))).hash and int(lines[0][3]) >= 80
    as_json = CliRunner().invoke(hash_command, [str(image_file), "--signal", "pdq", "--json"])
    assert json.loads(as_json.output)["signal_type"] == "pdq"


def test_hash_command_on_non_image(tmp_path: Path) -> None:
    text = tmp_path / "a.txt"
    text.write_text("hello there")
    result = CliRunner().invoke(hash_command, [str(text)])
    assert [line.split("\t")[1] for line in result.output.splitlines()] == ["md5", "sha256"]
    result = CliRunner().invoke(hash_command, [str(text), "--signal", "text_simhash"])
    assert result.exit_code == 0 and "text_simhash" in result.output
    result = CliRunner().invoke(hash_command, [str(text), "--signal", "pdq"])
    assert result.exit_code == 2 and "neither an image nor a video" in result.output


def test_bank_workflow(tmp_path: Path, env: dict[str, str], image_file: Path) -> None:
    runner = CliRunner(env=env)

    def run(*args: str, command: object = bank_group) -> str:
        result = runner.invoke(command, list(args))  # type: ignore[arg-type]
        assert result.exit_code == 0, result.output
        return result.output

    assert "created bank known" in run("create", "known", "--signal", "pdq")
    assert "added 1 entries" in run(
        "add", "known", "--file", str(image_file), "--tag", "csam", "--source", "me"
    )
    csv_file = tmp_path / "te.csv"
    csv_file.write_text(f"{'a' * 64},pdq,spam\n{'b' * 64},pdq,spam\n")
    assert "imported 2 entries" in run("import", "known", str(csv_file))
    listing = run("list")
    assert "known\tpdq\t3\t31\t50\tyes" in listing

    jpeg = tmp_path / "copy.jpg"
    from PIL import Image

    Image.open(image_file).convert("RGB").resize((320, 240)).save(jpeg, quality=80)
    matched = runner.invoke(match_command, [str(jpeg), "--bank", "known", "--json"])
    assert matched.exit_code == 0, matched.output
    record = json.loads(matched.output.splitlines()[0])
    assert record["tags"] == ["csam"] and record["source"] == "me" and record["distance"] <= 31

    exported = run("export", "known", "--format", "threatexchange")
    assert exported.splitlines()[0] == "hash,signal_type,tags" and len(exported.splitlines()) == 4

    assert "disabled 1 entries" in run("disable", "known", str(record["entry_id"]))
    assert runner.invoke(match_command, [str(jpeg), "--bank", "known"]).exit_code == 1
    assert "enabled 1 entries" in run("disable", "known", str(record["entry_id"]), "--enable")
    assert "disabled bank known" in run("disable", "known")
    assert runner.invoke(match_command, [str(jpeg), "--bank", "known"]).exit_code == 1
    run("disable", "known", "--enable")
    assert "removed 1 entries" in run("remove", "known", str(record["entry_id"]))
    assert runner.invoke(match_command, [str(jpeg), "--bank", "known"]).exit_code == 1


def test_cli_errors_are_clean(tmp_path: Path, env: dict[str, str]) -> None:
    runner = CliRunner(env=env)
    result = runner.invoke(bank_group, ["import", "nope", "-"], input="abc\n")
    assert result.exit_code == 2 and "no bank called 'nope'" in result.output
    runner.invoke(bank_group, ["create", "m", "--signal", "md5"])
    result = runner.invoke(bank_group, ["import", "m", "-"], input=f"{'a' * 32}\nxyz\n")
    assert result.exit_code == 2
    assert "line 2: a md5 hash has 32 hex characters, got 3" in result.output
    assert "nothing was imported" in result.output
    assert "m\tmd5\t0\t" in runner.invoke(bank_group, ["list"]).output
    result = runner.invoke(bank_group, ["add", "m", "xyz"])
    assert result.exit_code == 2 and "entry 1" in result.output


def test_db_option_overrides_env(tmp_path: Path, env: dict[str, str]) -> None:
    other = tmp_path / "other.sqlite"
    result = CliRunner(env=env).invoke(bank_group, ["create", "x", "--signal", "sha256", "--db", str(other)])
    assert result.exit_code == 0 and other.exists()
