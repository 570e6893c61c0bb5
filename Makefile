# The two commands of the README:
#   make run    install what is missing, set up Asterisk, Redis and prompts,
#               run the engine in the foreground until Ctrl-C
#   make test   install what is missing, then unit, component and end-to-end tests
#               (all but the few marked `long`: more than a minute of call time each)
#   make test-long  those long end-to-end tests; CI runs both
#   make test-faults  fault injection with real calls and the long fuzz runs
#               (issue 12, docs/reliability.md); CI runs it after the others
.PHONY: run test test-long test-faults deps setup unit bench bench-queues bench-month check-config

deps:
	@bash scripts/install-deps.sh

run: deps
	.venv/bin/ivr run

setup: deps
	.venv/bin/ivr setup

test: deps
	.venv/bin/ivr check-config
	.venv/bin/ivr setup
	.venv/bin/pytest -v -p no:cacheprovider --durations=30 -m "not long and not faults" tests

test-long: deps
	.venv/bin/ivr setup
	.venv/bin/pytest -v -p no:cacheprovider --durations=10 -m long tests

test-faults: deps
	.venv/bin/ivr setup
	.venv/bin/pytest -v -p no:cacheprovider --durations=20 -m faults tests

unit: deps
	.venv/bin/pytest -q -m "not faults" tests/unit tests/component

check-config: deps
	.venv/bin/ivr check-config

bench: deps
	.venv/bin/python bench/fastagi_bench.py

bench-queues: deps
	.venv/bin/python bench/queue_capacity_bench.py

bench-month: deps
	.venv/bin/python bench/month_replay_bench.py --scale 1.0 --rounds 2 --redis
