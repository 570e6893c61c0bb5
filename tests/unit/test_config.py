"""The demo configuration loads; broken ones are refused with file, line and field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ivr.cli import main
from ivr.configuration import ConfigError, load_config
from ivr.configuration.model import Listen

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO = REPO_ROOT / "config"

EXPECTED_MENU = [
    ("1", "takaful_karama"),
    ("2", "services_card"),
    ("3", "nasser_bank"),
    ("4", "addiction_fund"),
    ("5", "abnaa_misr"),
    ("6", "forsa"),
]


@pytest.fixture
def cfg_dir(tmp_path: Path) -> Path:
    """A writable copy of the demo configuration."""
    target = tmp_path / "config"
    target.mkdir()
    for f in DEMO.glob("*.yaml"):
        shutil.copy(f, target / f.name)
    return target


def replace_in(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} must occur exactly once in {path.name}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def line_of(path: Path, needle: str) -> int:
    """1-based number of the only line of ``path`` containing ``needle``."""
    hits = [i for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if needle in line]
    assert len(hits) == 1, f"{needle!r} must occur on exactly one line of {path.name}: {hits}"
    return hits[0]


def problems_of(folder: Path):
    with pytest.raises(ConfigError) as info:
        load_config(folder)
    assert info.value.problems, "a ConfigError must list at least one problem"
    return info.value.problems


def find(problems, field: str):
    matching = [p for p in problems if p.field == field]
    assert matching, f"no problem for field {field!r} in {[str(p) for p in problems]}"
    return matching[0]


# --- the demo configuration ------------------------------------------------------


def test_demo_config_loads():
    config = load_config(DEMO)
    hotline = config.hotline("1442")
    assert hotline is not None
    assert list(hotline.menu.options.items()) == EXPECTED_MENU
    assert hotline.fallback_queue == "shared"
    assert config.queue("shared") is not None


def test_demo_config_every_program_has_a_queue():
    config = load_config(DEMO)
    queue_ids = {q.id for q in config.queues}
    assert [p.id for p in config.programs] == [program for _, program in EXPECTED_MENU]
    for program in config.programs:
        queue = config.queue(program.id)
        assert queue is not None, program.id
        assert queue.program == program.id
    assert queue_ids == {p.id for p in config.programs} | {"shared"}


def test_demo_config_agents():
    config = load_config(DEMO)
    assert len(config.agents) >= 4
    assert len({a.id for a in config.agents}) == len(config.agents)
    assert any(len(a.programs) >= 2 for a in config.agents)
    # Every programme is served by somebody, and the general queue by everybody.
    for program in config.programs:
        assert config.queue_members(config.queue(program.id)), program.id
    assert config.queue_members(config.queue("shared")) == config.agents


def test_demo_config_prompts_referenced_exist():
    config = load_config(DEMO)
    h = config.hotline("1442")
    for prompt in (h.welcome_prompt, h.transfer_prompt, h.menu.prompt, h.menu.invalid_prompt,
                   h.menu.no_input_prompt):
        assert prompt in config.prompts
        assert config.prompt_text(prompt).strip()


def test_config_is_frozen():
    config = load_config(DEMO)
    with pytest.raises(Exception):
        config.hotlines[0].menu.retries = 9  # type: ignore[misc]


# --- malformed configurations ---------------------------------------------------


def test_unknown_key_names_file_line_and_field(cfg_dir: Path):
    path = cfg_dir / "hotlines.yaml"
    replace_in(path, "      retries: 3 ", "      retires: 3 ")
    expected_line = line_of(path, "retires:")
    problem = find(problems_of(cfg_dir), "hotlines[0].menu.retires")
    assert problem.file.endswith("hotlines.yaml")
    assert problem.line == expected_line
    assert "unknown key" in problem.message
    assert str(problem).endswith(f"hotlines.yaml:{expected_line}: hotlines[0].menu.retires: {problem.message}")


def test_unknown_key_is_the_only_problem(cfg_dir: Path):
    replace_in(cfg_dir / "hotlines.yaml", "      retries: 3 ", "      retires: 3 ")
    problems = problems_of(cfg_dir)
    assert [p.field for p in problems] == ["hotlines[0].menu.retires"]


def test_menu_option_to_unknown_program(cfg_dir: Path):
    path = cfg_dir / "hotlines.yaml"
    replace_in(path, "6: forsa", "6: forsaa")
    problems = problems_of(cfg_dir)
    problem = find(problems, "hotlines[0].menu.options.6")
    assert problem.file.endswith("hotlines.yaml")
    assert problem.line == line_of(path, "6: forsaa")
    assert "forsaa" in problem.message
    assert len(problems) == 1


def test_yaml_syntax_error_names_file_and_line(cfg_dir: Path):
    path = cfg_dir / "programs.yaml"
    # An unclosed flow mapping.
    replace_in(path, "  - {id: forsa, program: forsa}", "  - {id: forsa, program: forsa")
    problems = problems_of(cfg_dir)
    assert len(problems) == 1
    problem = problems[0]
    assert problem.file.endswith("programs.yaml")
    assert problem.field == "(syntax)"
    bad_line = line_of(path, "{id: forsa, program: forsa")
    # PyYAML reports where it noticed the problem: on or just after the bad line.
    assert bad_line <= problem.line <= bad_line + 2


def test_yaml_syntax_error_missing_colon(cfg_dir: Path):
    path = cfg_dir / "hotlines.yaml"
    replace_in(path, "    menu:\n", "    menu\n")
    problem = problems_of(cfg_dir)[0]
    assert problem.file.endswith("hotlines.yaml")
    assert problem.field == "(syntax)"
    assert line_of(path, "    menu") <= problem.line <= line_of(path, "    menu") + 2


def test_non_loopback_host_without_allow_public(cfg_dir: Path):
    path = cfg_dir / "service.yaml"
    replace_in(path, "fastagi: {host: 127.0.0.1, port: 4573}", "fastagi: {host: 0.0.0.0, port: 4573}")
    problem = find(problems_of(cfg_dir), "service.fastagi")
    assert problem.file.endswith("service.yaml")
    assert problem.line == line_of(path, "fastagi: {host: 0.0.0.0")
    assert "0.0.0.0" in problem.message and "allow_public" in problem.message


def test_non_loopback_host_with_allow_public_is_accepted(cfg_dir: Path):
    replace_in(cfg_dir / "service.yaml", "metrics: {host: 127.0.0.1, port: 9108}",
               "metrics: {host: 0.0.0.0, port: 9108, allow_public: true}")
    config = load_config(cfg_dir)
    assert config.service.metrics.host == "0.0.0.0"
    assert config.service.metrics.allow_public is True


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "::1", "localhost"])
def test_loopback_hosts_accepted(host: str):
    assert Listen(host=host, port=4573).host == host


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "192.168.1.10"])
def test_public_hosts_refused(host: str):
    with pytest.raises(ValueError, match="allow_public"):
        Listen(host=host, port=4573)


@pytest.mark.parametrize("host", ["localhost.example.com", "127.evil.example"])
def test_hostnames_that_merely_start_like_loopback_are_refused(host: str):
    with pytest.raises(ValueError):
        Listen(host=host, port=4573)


def test_public_redis_host_without_allow_public(cfg_dir: Path):
    replace_in(cfg_dir / "service.yaml", "redis: {host: 127.0.0.1,", "redis: {host: 0.0.0.0,")
    problems_of(cfg_dir)


def test_inverted_rtp_range_is_refused(cfg_dir: Path):
    replace_in(cfg_dir / "service.yaml", "rtp_port_start: 10000", "rtp_port_start: 20000")
    problems_of(cfg_dir)


def test_duplicate_section_across_files(cfg_dir: Path):
    extra = cfg_dir / "zz_extra.yaml"
    extra.write_text("# a second prompts section\n\nprompts:\n  hello: مرحبا\n", encoding="utf-8")
    problems = problems_of(cfg_dir)
    assert len(problems) == 1
    problem = problems[0]
    assert problem.file.endswith("zz_extra.yaml")
    assert problem.line == 3
    assert problem.field == "prompts"
    assert "prompts.yaml" in problem.message


def test_missing_required_field(cfg_dir: Path):
    path = cfg_dir / "hotlines.yaml"
    replace_in(path, "    fallback_queue: shared\n", "")
    problem = find(problems_of(cfg_dir), "hotlines[0].fallback_queue")
    assert problem.file.endswith("hotlines.yaml")
    # Reported on the hotline item that lacks it.
    assert problem.line == line_of(path, '- number: "1442"')
    assert "missing" in problem.message


def test_missing_section(cfg_dir: Path):
    (cfg_dir / "hotlines.yaml").unlink()
    problem = find(problems_of(cfg_dir), "hotlines")
    assert "missing" in problem.message


def test_missing_section_is_not_blamed_on_an_unrelated_file(cfg_dir: Path):
    (cfg_dir / "hotlines.yaml").unlink()
    problem = find(problems_of(cfg_dir), "hotlines")
    assert not problem.file.endswith("service.yaml")


def test_cross_reference_errors_point_at_the_right_line(cfg_dir: Path):
    path = cfg_dir / "agents.yaml"
    replace_in(path, "programs: [nasser_bank]", "programs: [nasser_bnk]")
    problem = find(problems_of(cfg_dir), "agents[1].programs[0]")
    assert problem.file.endswith("agents.yaml")
    assert problem.line == line_of(path, "nasser_bnk")
    assert "nasser_bnk" in problem.message


def test_empty_folder(tmp_path: Path):
    problems = problems_of(tmp_path)
    assert problems[0].field == "(folder)"


# --- ivr check-config ------------------------------------------------------------


def test_cli_check_config_ok(capsys):
    assert main(["check-config", "--config", str(DEMO)]) == 0
    out = capsys.readouterr().out
    assert "configuration OK" in out
    assert "1442" in out
    assert "forsa" in out


def test_cli_check_config_broken(cfg_dir: Path, capsys):
    path = cfg_dir / "hotlines.yaml"
    replace_in(path, "6: forsa", "6: forsaa")
    assert main(["check-config", "--config", str(cfg_dir)]) == 2
    captured = capsys.readouterr()
    assert "configuration OK" not in captured.out
    assert f"hotlines.yaml:{line_of(path, 'forsaa')}: hotlines[0].menu.options.6" in captured.err
    assert "forsaa" in captured.err
