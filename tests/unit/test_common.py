import asyncio

import pytest

from onestack.common import booleans, bus, errors, pagination, validation


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


@pytest.mark.parametrize("raw,want", [("1", True), ("t", True), ("Yes", True), (" ON ", True), (True, True),
                                      (1, True), ("0", False), ("f", False), ("NO", False), ("off", False),
                                      (False, False), (0, False)])
def test_booleans_read_oslo_spellings(raw, want):
    assert booleans.to_bool(raw, strict=True) is want
    assert booleans.parse_bool(raw, "flag") is want


def test_booleans_refuse_or_default_and_take_a_service_set():
    with pytest.raises(errors.BadRequest, match="Invalid value 'maybe' for flag"):
        booleans.parse_bool("maybe", "flag")
    assert booleans.to_bool("maybe") is False and booleans.to_bool("maybe", default=True) is True
    # Neutron's convert_to_boolean: true/false/1/0 only, its own words and error type
    with pytest.raises(errors.BadRequest, match="'yes' is not valid for x") as err:
        booleans.parse_bool("yes", "x", true=("true", "1"), false=("false", "0"),
                            message="'{value}' is not valid for {field}", type="InvalidInput")
    assert err.value.extra == {"type": "InvalidInput"}


def test_validation_styles_name_the_field():
    schema = {"type": "object", "properties": {"server": {"type": "object", "properties": {
        "tags": {"type": "array", "items": {"type": "string", "pattern": "^[^,]*$"}},
        "name": {"type": "string", "format": "name"}, "n": {"type": ["integer", "string"], "minimum": 1},
        "ip": {"type": "string", "format": "ipv4"}}, "required": ["name"], "additionalProperties": False}}}

    def nova(body):
        with pytest.raises(errors.BadRequest) as err:
            validation.validate(schema, {"server": body}, style=validation.NOVA)
        return err.value.message

    assert nova({"name": "a", "tags": ["x", "a,b"]}).startswith(
        "Invalid input for field/attribute tags[1]. Value: a,b.")
    assert nova({"name": "a", "n": "0"}) == \
        "Invalid input for field/attribute n. Value: 0. 0 is less than the minimum of 1"  # a string too
    assert nova({"name": "a", "ip": "1.2.3"}).endswith("'1.2.3' is not a 'ipv4'")
    assert nova({"name": " a"}).startswith("An invalid 'name' value was provided.")
    assert nova({}) == "Invalid input for field/attribute server. 'name' is a required property"
    assert nova({"name": "a", "x": 1}) == ("Invalid input for field/attribute server. Additional properties "
                                            "are not allowed ('x' was unexpected)")
    neutron = {"type": "object", "properties": {"fixed_ips": {"type": "array", "items": {
        "type": "object", "properties": {"ip_address": {"type": "string", "format": "ipv6"}}}}},
        "required": ["network_id"]}
    with pytest.raises(errors.BadRequest, match="Required attribute 'network_id' not specified"):
        validation.validate(neutron, {}, style=validation.NEUTRON)
    with pytest.raises(errors.BadRequest, match=r"^Invalid input for fixed_ips\. Reason: .*'ipv6'\.$"):
        validation.validate(neutron, {"network_id": "n", "fixed_ips": [{"ip_address": "x"}]},
                            style=validation.NEUTRON)
    assert validation.variant([(1, "a"), (5, "b"), (9, "c")], 7) == "b"


def test_pagination_offset_marker_and_links():
    assert pagination.parse_offset(None) == 0 and pagination.parse_offset("3") == 3
    with pytest.raises(errors.BadRequest, match="offset param must be positive"):
        pagination.parse_offset("-2")
    with pytest.raises(errors.NotFound, match="Marker nope"):
        pagination.page([{"id": "a"}], 1, "nope", key=lambda x: x["id"],
                        missing=lambda m: errors.NotFound(f"Marker {m} could not be found."))
    # repeated parameters are kept; without a limit the request's own stays
    link = pagination.next_link("http://h/x", [("sort_key", "a"), ("sort_key", "b"), ("limit", "2"),
                                               ("marker", "old")], "new")
    assert link == "http://h/x?sort_key=a&sort_key=b&limit=2&marker=new"
