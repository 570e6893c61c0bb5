"""`ivr simulate`'s callers: the keys each presses lead to a programme's queue."""

from __future__ import annotations

import random
from pathlib import Path

from core.configuration import load_config
from ivr.flow.menu import MenuWalk

DEMO = Path(__file__).resolve().parents[2] / "config"


def test_a_random_walk_always_ends_in_a_programme_never_in_a_self_service_key():
    from app.simulate import random_walk

    config = load_config(DEMO)
    for number in ("1442", "105"):
        hotline = config.hotline(number)
        ended = set()
        for seed in range(300):
            keys, program = random_walk(config, hotline.menu, random.Random(seed))
            walk = MenuWalk.start(config, hotline)
            for key in keys:
                walk = walk.on_key(key)
            # The IVR routes those keys to that programme's queue, as a choice.
            assert (walk.route.outcome, walk.route.program) == ("choice", program), (number, keys)
            ended.add(program)
        # Every programme of the line is reached by some caller.
        assert ended == {p for p in config.menu_programs(hotline.menu)
                         if any(o.program == p for m in config.menus.values() for o in m.options.values())}


def test_the_menus_reachable_from_a_line_come_once_each_a_menu_before_its_submenus():
    config = load_config(DEMO)
    for hotline in config.hotlines:
        menus = config.reachable_menus(hotline.menu)
        assert menus[0] == hotline.menu and len(menus) == len(set(menus))
        # Every submenu of a reached menu is reached, after it.
        for i, menu_id in enumerate(menus):
            for option in config.menus[menu_id].options.values():
                if option.menu:
                    assert option.menu in menus, (hotline.number, menu_id, option.menu)
                    assert menus.index(option.menu) > i or option.menu in menus[:i + 1]
    # A menu that is nobody's submenu is reached only from itself.
    main_105 = config.hotline("105").menu
    assert all(main_105 not in config.reachable_menus(h.menu) for h in config.hotlines if h.number != "105")
