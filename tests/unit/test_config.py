"""The demo configuration loads; broken ones are refused with file, line and field."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest

from app.cli import main
from core.configuration import ConfigError, load_config
from core.configuration.model import Listen, Menu, MenuOption

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
EXPECTED_REQUEST_TYPES = ["inquiry", "complaint", "service_request", "report", "grievance", "follow_up"]
# The Ministry of Health's unified line (105), the second tenant.
MOH_PROGRAMS = ["moh_treatment", "moh_hospitals", "moh_facilities", "moh_vaccination", "moh_medical_teams"]
DIRECT_LINES = {"14401": "takaful_karama", "14402": "services_card", "14403": "nasser_bank",
                "14404": "addiction_fund", "14405": "abnaa_misr", "14406": "forsa"}


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
    assert [h.number for h in config.hotlines] == ["1442", *DIRECT_LINES, "105"]
    assert len(config.hotlines) == 8
    assert len(config.programs) == 6 + len(MOH_PROGRAMS)
    assert [t.id for t in config.request_types] == EXPECTED_REQUEST_TYPES
    assert all(t.name.strip() for t in config.request_types)
    assert set(config.menus) == {"main-1442", "main-105"} | {program for _, program in EXPECTED_MENU} | set(MOH_PROGRAMS)
    hotline = config.hotline("1442")
    assert hotline is not None
    assert hotline.menu == "main-1442"
    main_menu = config.menus[hotline.menu]
    assert [(key, option.menu) for key, option in main_menu.options.items() if option.menu] == EXPECTED_MENU
    # 7: follow up an earlier request by its reference (ivr/flow/follow_up.py).
    assert {key: option.action for key, option in main_menu.options.items() if not option.menu} == {"7": "follow_up"}
    assert all(option.program is None and option.request_type is None for option in main_menu.options.values())
    assert main_menu.program is None
    assert hotline.fallback_queue == "shared"
    assert hotline.welcome_prompt == "welcome-1442"
    assert config.queue("shared") is not None


@pytest.mark.parametrize("key, program", EXPECTED_MENU)
def test_demo_programme_menus_offer_the_request_types(key, program):
    config = load_config(DEMO)
    menu = config.menus[program]
    assert menu.program == program
    expected = {"1": "inquiry", "2": "complaint", "3": "service_request"}
    if program == "takaful_karama":
        expected["4"] = "grievance"
        assert menu.prompt == "request-types-takaful"
    else:
        assert menu.prompt == "request-types"
    assert {k: o.request_type for k, o in menu.options.items()} == expected
    assert all(o.program == program and o.menu is None for o in menu.options.values())
    # * and 0 are never options: they go back and repeat on every menu.
    assert not {"*", "0"} & set(menu.options)


@pytest.mark.parametrize("number, program", sorted(DIRECT_LINES.items()))
def test_demo_direct_lines_start_in_their_programme_menu(number, program):
    config = load_config(DEMO)
    line = config.hotline(number)
    assert line is not None
    assert line.menu == program
    assert line.fallback_queue == program
    assert config.queue(line.fallback_queue).program == program
    assert line.welcome_prompt is None
    assert line.transfer_prompt == "transfer"


def test_demo_config_every_menu_is_reachable():
    config = load_config(DEMO)
    seen, todo = set(), [h.menu for h in config.hotlines]
    while todo:
        menu_id = todo.pop()
        if menu_id not in seen:
            seen.add(menu_id)
            todo += [o.menu for o in config.menus[menu_id].options.values() if o.menu]
    assert seen == set(config.menus)


def test_demo_config_every_program_has_a_queue():
    config = load_config(DEMO)
    queue_ids = {q.id for q in config.queues}
    assert [p.id for p in config.programs] == [program for _, program in EXPECTED_MENU] + MOH_PROGRAMS
    for program in config.programs:
        queue = config.queue(program.id)
        assert queue is not None, program.id
        assert queue.program == program.id
        assert config.program_queue(program.id) == queue
    assert queue_ids == {p.id for p in config.programs} | {"shared", "moh_shared"}


def test_demo_config_agents():
    config = load_config(DEMO)
    assert len(config.agents) >= 4
    assert len({a.id for a in config.agents}) == len(config.agents)
    assert any(len(a.programs) >= 2 for a in config.agents)
    # Every programme is served by somebody, and the general queue by everybody.
    for program in config.programs:
        assert config.queue_members(config.queue(program.id)), program.id
    # Each ministry's general queue by every agent of that ministry, and by nobody else.
    assert config.queue_members(config.queue("shared")) == tuple(a for a in config.agents if a.tenant == "mss")
    assert config.queue_members(config.queue("moh_shared")) == tuple(a for a in config.agents if a.tenant == "moh")
    assert {a.tenant for a in config.agents} == {"mss", "moh"}


def test_demo_config_prompts_referenced_exist():
    config = load_config(DEMO)
    for h in config.hotlines:
        for prompt in (h.welcome_prompt, h.transfer_prompt):
            if prompt is not None:
                assert prompt in config.prompts
                assert config.prompt_text(prompt).strip()
    for menu_id, menu in config.menus.items():
        for prompt in (menu.prompt, menu.invalid_prompt, menu.no_input_prompt):
            assert prompt in config.prompts, menu_id
            assert config.prompt_text(prompt).strip()


def test_demo_config_request_type_lookup():
    config = load_config(DEMO)
    assert config.request_type("grievance").name == "تظلم من إيقاف الصرف"
    assert config.request_type("nosuch") is None


def test_config_is_frozen():
    config = load_config(DEMO)
    with pytest.raises(Exception):
        config.menus["main-1442"].retries = 9  # type: ignore[misc]
    with pytest.raises(Exception):
        config.hotlines[0].menu = "forsa"  # type: ignore[misc]


# --- menu options, without files -------------------------------------------------


def test_menu_option_needs_exactly_one_target():
    assert MenuOption(menu="forsa").menu == "forsa"
    assert MenuOption(program="forsa", request_type="inquiry").request_type == "inquiry"
    assert MenuOption(program="forsa").request_type is None
    with pytest.raises(ValueError, match="exactly one"):
        MenuOption()
    with pytest.raises(ValueError, match="exactly one"):
        MenuOption(menu="forsa", program="forsa")
    with pytest.raises(ValueError, match="request_type"):
        MenuOption(menu="forsa", request_type="inquiry")


@pytest.mark.parametrize("key", ["*", "0"])
def test_menu_reserved_keys_are_refused(key):
    with pytest.raises(ValueError, match="reserved"):
        Menu(prompt="request-types", options={"1": MenuOption(program="forsa"), key: MenuOption(program="forsa")})


def test_menu_hash_key_is_an_option():
    menu = Menu(prompt="request-types", options={"#": MenuOption(program="forsa")})
    assert set(menu.options) == {"#"}
    assert (menu.timeout_seconds, menu.retries) == (5.0, 3)
    assert (menu.invalid_prompt, menu.no_input_prompt) == ("invalid-option", "no-input")


# --- malformed configurations ---------------------------------------------------


def test_unknown_key_names_file_line_and_field(cfg_dir: Path):
    path = cfg_dir / "menus.yaml"
    replace_in(path, "    prompt: main-menu-1442\n", "    prompt: main-menu-1442\n    retires: 3\n")
    expected_line = line_of(path, "retires:")
    problem = find(problems_of(cfg_dir), "menus.main-1442.retires")
    assert problem.file.endswith("menus.yaml")
    assert problem.line == expected_line
    assert "unknown key" in problem.message
    assert str(problem).endswith(f"menus.yaml:{expected_line}: menus.main-1442.retires: {problem.message}")


def test_unknown_key_is_the_only_problem(cfg_dir: Path):
    replace_in(cfg_dir / "menus.yaml", "    prompt: main-menu-1442\n", "    prompt: main-menu-1442\n    retires: 3\n")
    problems = problems_of(cfg_dir)
    assert [p.field for p in problems] == ["menus.main-1442.retires"]


def test_menu_option_to_unknown_program(cfg_dir: Path):
    path = cfg_dir / "menus.yaml"
    replace_in(path, "1: {program: forsa, request_type: inquiry}", "1: {program: forsaa, request_type: inquiry}")
    problems = problems_of(cfg_dir)
    problem = find(problems, "menus.forsa.options.1.program")
    assert problem.file.endswith("menus.yaml")
    assert problem.line == line_of(path, "program: forsaa")
    assert "forsaa" in problem.message
    assert len(problems) == 1


def test_menu_option_with_both_menu_and_program(cfg_dir: Path):
    path = cfg_dir / "menus.yaml"
    replace_in(path, "1: {menu: takaful_karama}", "1: {menu: takaful_karama, program: takaful_karama}")
    problems = problems_of(cfg_dir)
    problem = find(problems, "menus.main-1442.options.1")
    assert problem.file.endswith("menus.yaml")
    assert problem.line == line_of(path, "{menu: takaful_karama, program: takaful_karama}")
    assert "exactly one" in problem.message
    assert str(problem) == f"{problem.file}:{problem.line}: menus.main-1442.options.1: {problem.message}"
    assert len(problems) == 1


def test_menu_option_with_neither_menu_nor_program(cfg_dir: Path):
    path = cfg_dir / "menus.yaml"
    replace_in(path, "2: {program: forsa, request_type: complaint}", "2: {request_type: complaint}")
    problem = find(problems_of(cfg_dir), "menus.forsa.options.2")
    assert problem.file.endswith("menus.yaml")
    assert problem.line == line_of(path, "2: {request_type: complaint}")


def test_menu_option_opening_a_menu_with_a_request_type(cfg_dir: Path):
    path = cfg_dir / "menus.yaml"
    replace_in(path, "6: {menu: forsa}", "6: {menu: forsa, request_type: inquiry}")
    problem = find(problems_of(cfg_dir), "menus.main-1442.options.6")
    assert problem.line == line_of(path, "6: {menu: forsa, request_type")
    assert "request_type" in problem.message


@pytest.mark.parametrize("key", ['"*"', "0"])
def test_menu_option_on_a_reserved_key(cfg_dir: Path, key: str):
    path = cfg_dir / "menus.yaml"
    replace_in(path, "3: {program: forsa, request_type: service_request}\n",
               f"3: {{program: forsa, request_type: service_request}}\n      {key}: {{program: forsa}}\n")
    problems = problems_of(cfg_dir)
    problem = find(problems, "menus.forsa")
    assert problem.file.endswith("menus.yaml")
    assert problem.line == line_of(path, "  forsa:")
    assert "reserved" in problem.message
    assert key.strip('"') in problem.message
    assert len(problems) == 1


def test_menu_option_on_a_key_that_is_not_a_digit(cfg_dir: Path):
    path = cfg_dir / "menus.yaml"
    replace_in(path, "6: {menu: forsa}\n", "6: {menu: forsa}\n      12: {menu: forsa}\n")
    problem = find(problems_of(cfg_dir), "menus.main-1442.options.12.[key]")
    assert problem.file.endswith("menus.yaml")
    assert problem.line == line_of(path, "12: {menu: forsa}")


def test_menu_option_to_unknown_menu(cfg_dir: Path):
    path = cfg_dir / "menus.yaml"
    replace_in(path, "1: {menu: takaful_karama}", "1: {menu: takaful_karam}")
    problems = problems_of(cfg_dir)
    problem = find(problems, "menus.main-1442.options.1.menu")
    assert problem.file.endswith("menus.yaml")
    assert problem.line == line_of(path, "takaful_karam}")
    assert "unknown menu" in problem.message and "takaful_karam" in problem.message
    assert len(problems) == 1


def test_menu_option_to_unknown_request_type(cfg_dir: Path):
    path = cfg_dir / "menus.yaml"
    replace_in(path, "request_type: grievance}", "request_type: grievence}")
    problems = problems_of(cfg_dir)
    problem = find(problems, "menus.takaful_karama.options.4.request_type")
    assert problem.file.endswith("menus.yaml")
    assert problem.line == line_of(path, "grievence")
    assert "unknown request type" in problem.message and "grievence" in problem.message
    assert len(problems) == 1


def test_menu_about_an_unknown_program(cfg_dir: Path):
    path = cfg_dir / "menus.yaml"
    replace_in(path, "    program: nasser_bank\n", "    program: nasser_bnk\n")
    problem = find(problems_of(cfg_dir), "menus.nasser_bank.program")
    assert problem.file.endswith("menus.yaml")
    assert problem.line == line_of(path, "program: nasser_bnk")
    assert "nasser_bnk" in problem.message


def test_menu_with_unknown_prompt(cfg_dir: Path):
    path = cfg_dir / "menus.yaml"
    replace_in(path, "prompt: request-types-takaful", "prompt: request-types-takafol")
    problem = find(problems_of(cfg_dir), "menus.takaful_karama.prompt")
    assert problem.file.endswith("menus.yaml")
    assert problem.line == line_of(path, "request-types-takafol")
    assert "unknown prompt" in problem.message


def test_hotline_on_unknown_menu(cfg_dir: Path):
    path = cfg_dir / "hotlines.yaml"
    replace_in(path, "menu: nasser_bank,", "menu: nasser_bnk,")
    problems = problems_of(cfg_dir)
    problem = find(problems, "hotlines[3].menu")
    assert problem.file.endswith("hotlines.yaml")
    assert problem.line == line_of(path, "menu: nasser_bnk")
    assert "unknown menu" in problem.message and "nasser_bnk" in problem.message
    assert len(problems) == 1


def test_removed_request_type_still_used_by_a_menu(cfg_dir: Path):
    path = cfg_dir / "menus.yaml"
    replace_in(path, "  - {id: grievance, name: تظلم من إيقاف الصرف}\n", "")
    problem = find(problems_of(cfg_dir), "menus.takaful_karama.options.4.request_type")
    assert "grievance" in problem.message


def test_yaml_syntax_error_names_file_and_line(cfg_dir: Path):
    path = cfg_dir / "programs.yaml"
    # An unclosed flow mapping.
    replace_in(path, "  - {id: forsa, program: forsa, max_wait_seconds: 600, overflow_queue: shared}",
               "  - {id: forsa, program: forsa, max_wait_seconds: 600, overflow_queue: shared")
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
    replace_in(path, "    menu: main-1442\n", "    menu main-1442\n")
    problem = problems_of(cfg_dir)[0]
    assert problem.file.endswith("hotlines.yaml")
    assert problem.field == "(syntax)"
    assert line_of(path, "menu main-1442") <= problem.line <= line_of(path, "menu main-1442") + 2


def test_yaml_syntax_error_in_menus(cfg_dir: Path):
    path = cfg_dir / "menus.yaml"
    replace_in(path, "  main-1442:\n", "  main-1442\n")
    problems = problems_of(cfg_dir)
    assert len(problems) == 1
    assert problems[0].file.endswith("menus.yaml")
    assert problems[0].field == "(syntax)"
    assert line_of(path, "  main-1442") <= problems[0].line <= line_of(path, "  main-1442") + 2


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
    replace_in(path, "skills: {nasser_bank: primary,", "skills: {nasser_bnk: primary,")
    problem = find(problems_of(cfg_dir), "agents[1].skills.nasser_bnk")
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
    assert "14403" in out
    assert "forsa" in out


def test_cli_check_config_broken(cfg_dir: Path, capsys):
    path = cfg_dir / "menus.yaml"
    replace_in(path, "6: {menu: forsa}", "6: {menu: forsaa}")
    assert main(["check-config", "--config", str(cfg_dir)]) == 2
    captured = capsys.readouterr()
    assert "configuration OK" not in captured.out
    assert f"menus.yaml:{line_of(path, 'forsaa')}: menus.main-1442.options.6.menu" in captured.err
    assert "forsaa" in captured.err


# --- holidays (schedules.yaml) -------------------------------------------------------

COMPUTED = "    computed_holidays: egypt\n"


def line_of_key(path: Path, key: str) -> int:
    """1-based number of the only line of ``path`` that starts with ``key`` (comments aside)."""
    hits = [i for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            if line.strip().startswith(key)]
    assert len(hits) == 1, f"{key!r} must start exactly one line of {path.name}: {hits}"
    return hits[0]


def with_schedule_lines(cfg_dir: Path, *lines: str) -> Path:
    """The demo's ministry schedule with ``lines`` added after computed_holidays."""
    path = cfg_dir / "schedules.yaml"
    replace_in(path, COMPUTED, COMPUTED + "".join(f"    {line}\n" for line in lines))
    return path


@pytest.mark.parametrize("lines, field, needle, message", [
    (["not_holiday: [2026-06-30]"], "schedules.ministry.not_holiday", "not_holiday:", "unknown key"),
    (["holidays: [2026-02-30]"], "schedules.ministry.holidays[0]", "holidays:", "day value is outside"),
    (["not_holidays: [2026-06-29]"], "schedules.ministry.not_holidays", "not_holidays:",
     "2026-06-29 is not a computed holiday"),
    (["hijri_months:", '  "1436-12": 2015-08-15'], "schedules.ministry.hijri_months", "hijri_months:",
     "1436-12: 2015-08-15 is -30 days from the start of Dhu al-Hijjah 1436 in the Umm al-Qura calendar (2015-09-14)"),
    (["hijri_months:", '  "1501-01": 2077-11-17'], "schedules.ministry.hijri_months.1501-01.[key]", '"1501-01"',
     "outside the Umm al-Qura table (1343-1500 AH)"),
    (["hijri_months: {1436-12: 2015-09-15}", "not_holidays: [2015-09-22]"], "schedules.ministry.not_holidays",
     "not_holidays:", "2015-09-22 is not a computed holiday"),
])
def test_holiday_errors_name_file_line_and_field(cfg_dir: Path, lines, field, needle, message):
    path = with_schedule_lines(cfg_dir, *lines)
    problem = find(problems_of(cfg_dir), field)
    assert problem.file.endswith("schedules.yaml")
    assert problem.line == line_of_key(path, needle)
    assert message in problem.message


def test_unknown_computation_is_refused_at_its_line(cfg_dir: Path):
    path = cfg_dir / "schedules.yaml"
    replace_in(path, COMPUTED, "    computed_holidays: egyptian\n")
    problem = find(problems_of(cfg_dir), "schedules.ministry.computed_holidays")
    assert problem.line == line_of(path, "computed_holidays: egyptian")
    assert "'egypt' or 'none'" in problem.message


def test_announced_month_moves_the_eid(cfg_dir: Path):
    with_schedule_lines(cfg_dir, "hijri_months:", '  "1436-12": 2015-09-15   # Egypt: Eid al-Adha on 24 September')
    ministry = load_config(cfg_dir).schedules["ministry"]
    assert not ministry.is_holiday(date(2015, 9, 22))
    assert [ministry.is_holiday(date(2015, 9, d)) for d in (23, 24, 25, 26)] == [True] * 4


def test_check_config_lists_the_coming_holidays(capsys):
    assert main(["check-config", "--config", str(DEMO), "--today", "2026-03-01"]) == 0
    captured = capsys.readouterr()
    assert "schedule ministry: 11 holiday(s) in the 90 days from 2026-03-01: 2026-03-20 Eid al-Fitr (1st day); " \
           "2026-03-21 Eid al-Fitr (2nd day)" in captured.out
    assert "2026-04-25 Sinai Liberation Day" in captured.out
    # 2026-05-29 is the 90th day; the Islamic New Year (16 June) is beyond.
    assert captured.out.rstrip().endswith("2026-05-29 Eid al-Adha (3rd day)")
    assert "warning" not in captured.err


def test_check_config_warns_beyond_the_umm_al_qura_table(capsys):
    assert main(["check-config", "--config", str(DEMO), "--today", "2077-09-01"]) == 0
    captured = capsys.readouterr()
    assert "configuration OK" in captured.out
    assert ("warning: schedules.ministry: no holiday data for 2077-11-17 to 2077-11-29 (within the coming 90 days): "
            "the Islamic holidays are computed from the Umm al-Qura table (hijridate), which ends on 2077-11-16"
            in captured.err)
    # The day before the table's last 90 days: nothing to say.
    assert main(["check-config", "--config", str(DEMO), "--today", "2077-08-18"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_check_config_warns_when_a_hand_kept_list_runs_out(cfg_dir: Path, capsys):
    replace_in(cfg_dir / "schedules.yaml", COMPUTED,
               "    computed_holidays: none\n    holidays: [2026-01-07, 2026-10-06]\n")
    assert main(["check-config", "--config", str(cfg_dir), "--today", "2026-10-01"]) == 0
    captured = capsys.readouterr()
    assert "schedule ministry: 1 holiday(s) in the 90 days from 2026-10-01: 2026-10-06 holiday listed" in captured.out
    assert "warning" not in captured.err
    assert main(["check-config", "--config", str(cfg_dir), "--today", "2026-11-15"]) == 0
    assert ("warning: schedules.ministry: no holiday data for 2027-01-01 to 2027-02-12 (within the coming 90 days): "
            "computed_holidays is none and holidays lists no day of 2027" in capsys.readouterr().err)


def test_check_config_warns_when_nothing_is_known(cfg_dir: Path, capsys):
    replace_in(cfg_dir / "schedules.yaml", COMPUTED, "    computed_holidays: none\n")
    assert main(["check-config", "--config", str(cfg_dir), "--today", "2026-03-01"]) == 0
    assert "no holiday data for 2026-03-01 to 2026-05-29" in capsys.readouterr().err


# --- found by fuzzing (tests/unit/test_fuzz_config.py) -----------------------------


def prepend(path: Path, text: str) -> None:
    path.write_text(text + path.read_text(encoding="utf-8"), encoding="utf-8")


@pytest.mark.parametrize("name, text, line, field, message", [
    # Was yaml.reader.ReaderError out of `ivr check-config`: a traceback.
    ("programs.yaml", "# one\n# two\n\x07\n", 3, "(syntax)", "#x0007"),
    # Was a problem at line 0: the file, no line.
    ("hotlines.yaml", b"# one\n# two\nhotlines: \xc3\x28\n", 3, "(encoding)", "0xc3"),
    # Were RecursionError.
    ("menus.yaml", "# one\nzz: " + "[" * 3000 + "]" * 3000 + "\n", 2, "(syntax)", "nested"),
    ("agents.yaml", "# one\nzz: &a [1, *a]\n", 2, "(syntax)", "contains it"),
], ids=["control_character", "not_utf8", "nested_3000_deep", "alias_inside_itself"])
def test_a_file_yaml_cannot_read_names_its_line(cfg_dir: Path, name, text, line, field, message):
    path = cfg_dir / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        prepend(path, text)
    [problem] = problems_of(cfg_dir)
    assert (problem.file, problem.line, problem.field) == (str(path), line, field)
    assert message in problem.message


def test_aliases_that_multiply_are_refused_at_once(cfg_dir: Path):
    # "Billion laughs": 5**12 values once expanded; the loader walked them all (it never came back).
    path = cfg_dir / "schedules.yaml"
    prepend(path, "x0: &x0 [a]\n" + "".join(f"x{i + 1}: &x{i + 1} [*x{i}, *x{i}, *x{i}, *x{i}, *x{i}]\n"
                                             for i in range(12)))
    [problem] = problems_of(cfg_dir)
    assert (problem.file, problem.field) == (str(path), "(syntax)") and problem.line >= 1
    assert "aliases" in problem.message


@pytest.mark.parametrize("value, message", [("9" * 5000, "not a value YAML can read"),
                                            ("!!python/name:os.system", "constructor")])
def test_a_value_yaml_cannot_construct_names_its_line_and_field(cfg_dir: Path, value: str, message: str):
    # Were ValueError and yaml's ConstructorError out of `ivr check-config`: tracebacks.
    path = cfg_dir / "distribution.yaml"
    replace_in(path, "retry_after_seconds: 300", f"retry_after_seconds: {value}")
    [problem] = problems_of(cfg_dir)
    assert (problem.file, problem.line) == (str(path), line_of(path, "  retry_after_seconds:"))
    assert problem.field == "distribution.callbacks.retry_after_seconds" and message in problem.message
