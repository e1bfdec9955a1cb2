from collections import defaultdict
from pathlib import Path

import pytest

from tests import requirements
from tests.cloud import Cloud, Postgres

TESTS = Path(__file__).resolve().parent
_TIER_SECONDS: dict[str, float] = defaultdict(float)


# The quick part: unit and API tests that need no root, guests, namespaces or servers.
# They start their own clouds on free ports, so `make test` runs them on several
# workers (`--part quick -n 4`). Then the rest, as two pytest processes at once:
# `--part host`, the tests that use this host (root, guests, namespaces, the cluster,
# brokers), one at a time; and `--part beside`, the unit, API and interop tests whose
# only extra is a PostgreSQL server or a Tempest run of their own (the host tests leave a
# core idle while guests boot and timers run; the quick part has none to spare). `--part rest` is both, one
# at a time. (Two processes, not xdist's loadgroup: pytest 9 ignores the group suffix
# xdist 3.8 puts on test ids, so host tests were spread over both workers.)
QUICK_DIRS = ("unit", "api")
BESIDE_DIRS = (*QUICK_DIRS, "interop")
NOT_QUICK = ("e2e", "root", "netns", "libvirt", "postgres", "rabbitmq")
BESIDE_THE_HOST_TESTS = {"postgres"}


def pytest_addoption(parser):
    parser.addoption("--part", choices=("quick", "rest", "host", "beside"), default=None,
                     help="quick: unit+API tests on fake hosts (parallel-safe); rest: the others, "
                          "which are host (one at a time) and beside (only a PostgreSQL server)")


def pytest_configure(config):
    for name, doc in requirements.MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {doc}")


def _quick(item) -> bool:
    parts = Path(str(item.path)).resolve().relative_to(TESTS).parts
    return parts[0] in QUICK_DIRS and not any(item.get_closest_marker(m) for m in NOT_QUICK)


def _beside(item) -> bool:
    parts = Path(str(item.path)).resolve().relative_to(TESTS).parts
    marks = {m for m in NOT_QUICK if item.get_closest_marker(m)}
    return parts[0] in BESIDE_DIRS and marks <= BESIDE_THE_HOST_TESTS


def _in_part(item, part: str) -> bool:
    if _quick(item):
        return part == "quick"
    return part in ("rest", "beside" if _beside(item) else "host")


def pytest_collection_modifyitems(config, items):
    part = config.getoption("--part")
    if part is None:
        return
    keep = [i for i in items if _in_part(i, part)]
    dropped = [i for i in items if i not in keep]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
    # the cluster's tests last: its short heartbeats should not meet the tests beside
    items.sort(key=lambda i: Path(str(i.path)).resolve().relative_to(TESTS).parts[0] == "cluster")


def pytest_runtest_setup(item):
    requirements.check(item)


# Under CI=true every prerequisite is installed (scripts/install.sh), so any skip,
# of a test or of a whole module, means a broken install or a broken test: it fails.
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    requirements.fail_skip_in_ci(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    requirements.fail_skip_in_ci(outcome.get_result())


def _tier(report) -> str:
    """unit, api, postgres, e2e, interop, ...: the folder under tests/, or postgres for
    tests marked so (they start their own PostgreSQL server)."""
    path = Path(report.fspath).resolve()
    if "postgres" in report.keywords and "cluster" not in path.parts:
        return "postgres"
    try:
        return path.relative_to(TESTS).parts[0]
    except ValueError:
        return "other"


def pytest_runtest_logreport(report):
    # setup + call + teardown, so a module's or the session's cloud start counts too
    _TIER_SECONDS[_tier(report)] += report.duration


def pytest_terminal_summary(terminalreporter):
    times = _TIER_SECONDS
    if not times:
        return
    fmt = lambda s: f"{int(s // 60)}m{s % 60:04.1f}s"  # noqa: E731
    parts = [f"{tier} {fmt(t)}" for tier, t in sorted(times.items(), key=lambda kv: -kv[1])]
    terminalreporter.write_sep("-", "time per tier")
    terminalreporter.write_line("tiers: " + ", ".join(parts) + f" (sum {fmt(sum(times.values()))})")


@pytest.fixture(scope="session")
def cloud():
    """A running all-in-one onestack on SQLite."""
    c = Cloud("sqlite").start()
    yield c
    c.stop()


@pytest.fixture(scope="session")
def pg_cloud():
    """The same cloud on a PostgreSQL server started for this test run."""
    try:
        pg = Postgres().start()
    except FileNotFoundError as e:
        requirements.missing(str(e))
    c = Cloud("postgres", database_url=pg.url)
    try:
        c.start()
        yield c
    finally:
        c.stop()
        pg.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_cloud(request):
    """Run a test once on each database backend."""
    return request.getfixturevalue("cloud" if request.param == "sqlite" else "pg_cloud")
