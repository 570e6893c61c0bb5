"""Place SIPp calls against a running engine: ``ivr simulate --calls N``.

SIPp agents register with their generated credentials and answer; callers
dial the first hotline, pick a programme at random, and some give up while
waiting. The figures on /metrics move; the end-to-end tests use the same
machinery (:mod:`app.simulate.sipp`, :mod:`app.simulate.metrics_reader`).
"""

from __future__ import annotations

import random
import time

from core.configuration import Config
from core.paths import Paths

from dataclasses import dataclass, field

from .metrics_reader import read_samples, sample
from .sipp import CallerScript, Sipp, feature_code_scenario, start_agent, stop_agent, typed_keys

COUNTERS = ("ivr_queue_offered_total", "ivr_queue_answered_total", "ivr_queue_abandoned_total",
            "ivr_queue_short_abandoned_total")


@dataclass
class SimulationResult:
    calls: int
    failed: int
    # queue id -> (offered, answered, abandoned, short-abandoned) added during the run
    per_queue: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)

    def total(self, index: int) -> float:
        return sum(row[index] for row in self.per_queue.values())


def random_walk(config: Config, menu_id: str, rng: random.Random) -> tuple[list[str], str]:
    """Keys a caller presses to go from ``menu_id`` to some programme, chosen at
    random among the keys that lead to one (a sub-menu or a programme; the
    self-service keys, follow-up and answers, end in the IVR)."""
    keys = []
    while True:
        routes = [(k, o) for k, o in sorted(config.menus[menu_id].options.items()) if o.menu or o.program]
        key, option = rng.choice(routes)
        keys.append(key)
        if option.menu is None:
            return keys, option.program
        menu_id = option.menu


def random_national_id(rng: random.Random) -> str:
    """A structurally valid ID: born 1950-1999, a real governorate, any sequence."""
    from core.citizens.governorates import GOVERNORATES

    year, month, day = rng.randint(50, 99), rng.randint(1, 12), rng.randint(1, 28)
    code = rng.choice(GOVERNORATES).code
    return f"2{year:02d}{month:02d}{day:02d}{code}{rng.randint(1, 9999):04d}{rng.randint(0, 9)}"


def random_phone_number(rng: random.Random | None = None, *, mobile: bool = False) -> str:
    """A Cairo landline (02 2xxxxxxx), or a mobile number (010 xxxxxxxx)."""
    rng = rng or random.Random()
    head, digits = ("010", 8) if mobile else ("022", 7)
    return head + "".join(rng.choice("0123456789") for _ in range(digits))


def run_simulation(config: Config, paths: Paths, *, calls: int, rate: float, abandon_share: float,
                   seed: int | None = None, sipp: Sipp | None = None) -> SimulationResult:
    from core.secrets import SecretStore

    rng = random.Random(seed)
    s = config.service
    metrics_url = f"http://{s.metrics.host}:{s.metrics.port}/metrics"
    before = read_samples(metrics_url)  # OSError when the engine is not running
    secrets = SecretStore(paths.secrets_file)
    carrier = f"{s.carrier_sip.host}:{s.carrier_sip.port}"
    agent_target = f"{s.agent_sip.host}:{s.agent_sip.port}"
    sipp = sipp or Sipp()
    hotline = config.hotlines[0]
    agents = []
    print(f"Registering {len(config.agents)} SIPp agent(s) and logging them in ({config.agent_policy.feature_codes.login}); "
          f"logs in {sipp.workdir}")
    logins = []
    for agent in config.agents:
        password = secrets.agent_password(agent.sip_username)
        agents.append(start_agent(sipp, user=agent.sip_username, password=password,
                                  target=agent_target, talk_ms=rng.randint(3000, 8000)))
        # Log in from the softphone, as an agent starting a shift does (an
        # agent logged in already hears so; nothing changes). All agents dial
        # at once, as a shift does, and each waits for the spoken confirmation.
        logins.append(sipp.start(f"code-{agent.sip_username}", feature_code_scenario(
            agent.sip_username, password, config.agent_policy.feature_codes.login), target=agent_target))
    for login in logins:
        login.wait(timeout=40)
    callers = []
    try:
        print(f"Placing {calls} call(s) to {hotline.number} at {rate}/s")
        for n in range(calls):
            gives_up = rng.random() < abandon_share
            presses, program = random_walk(config, hotline.menu, rng)
            keys = tuple((rng.randint(800, 2500) if i == 0 else rng.randint(1500, 3000), key)
                         for i, key in enumerate(presses))
            if config.program(program).collect_national_id:
                # Type a plausible ID, then confirm it during the read-back.
                keys += typed_keys(random_national_id(rng), 2500) + ((2500, "1"),)
            script = CallerScript(number=hotline.number, keys=keys,
                                  hold_ms=rng.randint(12_000, 20_000) if gives_up else 90_000,
                                  caller_id=random_phone_number(rng))
            callers.append(sipp.call(script, target=carrier))
            time.sleep(1.0 / rate)
        failed = 0
        for proc in callers:
            if proc.wait(timeout=180) != 0:
                failed += 1
    finally:
        for agent in agents:
            stop_agent(sipp, agent, password=secrets.agent_password(agent.user), target=agent_target)
    after = read_samples(metrics_url)
    result = SimulationResult(calls=calls, failed=failed)
    for q in config.queues:
        result.per_queue[q.id] = tuple(sample(after, name, program=q.id) - sample(before, name, program=q.id)
                                       for name in COUNTERS)
    print(f"\n{calls - failed} call(s) completed, {failed} failed (SIPp logs: {sipp.workdir})\n")
    print(f"{'program':<16}{'offered':>9}{'answered':>10}{'abandoned':>11}{'short':>7}")
    for queue_id, row in result.per_queue.items():
        if any(row):
            print(f"{queue_id:<16}{row[0]:>9.0f}{row[1]:>10.0f}{row[2]:>11.0f}{row[3]:>7.0f}")
    return result
