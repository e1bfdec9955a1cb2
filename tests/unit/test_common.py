import asyncio

import pytest

from onestack.common import bus, errors, pagination, validation


def test_page_and_links():
    items = [{"id": str(i)} for i in range(5)]
    got, more = pagination.page(items, 2, None, key=lambda x: x["id"])
    assert [x["id"] for x in got] == ["0", "1"] and more
    got, more = pagination.page(items, 2, "3", key=lambda x: x["id"])
    assert [x["id"] for x in got] == ["4"] and not more
    with pytest.raises(errors.BadRequest, match="marker"):
        pagination.page(items, 2, "nope", key=lambda x: x["id"])
    link = pagination.next_link("http://h/v2/images", {"name": "a b", "marker": "x"}, "1", 2)
    assert link == "http://h/v2/images?name=a+b&limit=2&marker=1"


@pytest.mark.parametrize("raw,want", [(None, None), ("", None), ("3", 3), ("500", 100)])
def test_parse_limit(raw, want):
    assert pagination.parse_limit(raw, maximum=100) == want


@pytest.mark.parametrize("raw", ["-1", "x", "1.5"])
def test_parse_limit_rejects(raw):
    with pytest.raises(errors.BadRequest, match="limit"):
        pagination.parse_limit(raw)


def test_validation_names_the_field():
    schema = {"type": "object", "properties": {"name": validation.string(5)}, "required": ["name"],
              "additionalProperties": False}
    assert validation.validate(schema, {"name": "ok"}) == {"name": "ok"}
    with pytest.raises(errors.BadRequest, match="'name'.*required"):
        validation.validate(schema, {})
    with pytest.raises(errors.BadRequest, match="field 'name'"):
        validation.validate(schema, {"name": "toolong"})
    with pytest.raises(errors.BadRequest, match="'extra'"):
        validation.validate(schema, {"name": "a", "extra": 1})


def test_in_process_bus_call_cast_notify():
    b = bus.InProcessBus()
    done = []

    class Agent:
        def add(self, a, b):
            return a + b

        async def slow(self, x):
            await asyncio.sleep(0)
            done.append(x)

    b.serve("compute.host1", Agent())
    events = []
    b.subscribe("identity.project.*", lambda t, p: events.append((t, p["id"])))
    b.notify("identity.project.created", {"id": "p1"})
    b.notify("identity.user.created", {"id": "u1"})
    assert events == [("identity.project.created", "p1")]

    async def run():
        assert await b.call("compute.host1", "add", a=1, b=2) == 3
        await b.cast("compute.host1", "slow", x="cast")
        await asyncio.sleep(0.05)
        with pytest.raises(errors.ServiceUnavailable):
            await b.call("compute.nohost", "add", a=1, b=2)
        with pytest.raises(errors.BadRequest):
            await b.call("compute.host1", "_private")

    asyncio.run(run())
    assert done == ["cast"]
