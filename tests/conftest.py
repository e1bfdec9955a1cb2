import pytest

from tests.cloud import Cloud, Postgres


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
        pytest.skip(str(e))
    c = Cloud("postgres", database_url=pg.url)
    try:
        c.start()
        yield c
    finally:
        c.stop()
        pg.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def any_cloud(request):
    """Run a test once on each database backend."""
    return request.getfixturevalue("cloud" if request.param == "sqlite" else "pg_cloud")
