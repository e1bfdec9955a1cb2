"""The interop harness's own logic (tests/interop/run.py), without running Tempest: reading
both guideline layouts, choosing guidelines and capabilities, matching test ids, the
[heat_plugin] options, the workspace files, and what a run prints when the cloud does not
offer an add-on's service. Quick: a fake cloud answers the harness's look-ups."""

import configparser
import json
import re

import pytest

from tests.interop import run

PLATFORM = run.GUIDELINES["platform"][0]
ORCHESTRATION = run.GUIDELINES["orchestration"][0]
TYPO = ("heat_tempest_plugin.tests.functional.test_preview.StackPreviewTest."
        "test_res_group_with_nested_template")


class FakeCloud(run.Cloud):
    """A catalog of loopback endpoints; `docs` answers GET by path."""

    def __init__(self, types, docs=None, project="p-demo"):
        catalog = {t: [{"interface": "public", "region_id": "RegionOne",
                        "url": f"http://127.0.0.1:9/{t}"}] for t in types}
        super().__init__("token", catalog, {"project": {"id": project}})
        self.docs = docs or {}

    def get(self, url):
        return self.docs[url.removeprefix("http://127.0.0.1:9")]


def test_platform_layout_capability_to_test_list():
    g = run.load_guideline(PLATFORM, "platform")
    assert len(g.caps) == 78 and g.service is None
    assert all(t.startswith("tempest.") and "[" not in t for t in g.tests())


def test_addon_layout_required_capabilities_with_idempotent_ids():
    g = run.load_guideline(ORCHESTRATION, "orchestration", "orchestration")
    assert len(g.caps) == 23 and len(g.tests()) == 60
    assert "heat_tempest_plugin.tests.api.test_heat_api.stacks_create_empty_stack.test_request" \
        in g.caps["stack-create"]
    # the guideline misspells one test id (upstream too); its idempotent id still finds it
    assert g.ids[TYPO + ":Wherej"] == "6ca8ddfc-106f-4ecc-83f7-fca31d0c85ca"


def test_schema2_keeps_required_capabilities_and_drops_flagged_tests(tmp_path):
    doc = {
        "components": {"c": {"capabilities": {"required": ["a"], "advisory": ["b"]}}},
        "capabilities": {
            "a": {"tests": {"p.T.test_1[id-11111111-1111-1111-1111-111111111111]":
                            {"idempotent_id": "11111111-1111-1111-1111-111111111111"},
                            "p.T.test_2": {"idempotent_id": "x", "flagged": {"reason": "r"}}}},
            "b": {"tests": {"p.T.test_3": {"idempotent_id": "y"}}},
        },
    }
    path = tmp_path / "g.json"
    path.write_text(json.dumps(doc))
    g = run.load_guideline(path)
    assert g.name == "g" and g.caps == {"a": ["p.T.test_1"]}
    assert g.ids == {"p.T.test_1": "11111111-1111-1111-1111-111111111111"}


def test_flat_layout_reads_ids_from_attributes(tmp_path):
    path = tmp_path / "flat.json"
    uuid = "22222222-2222-2222-2222-222222222222"
    path.write_text(json.dumps({"cap": [f"tempest.api.x.T.test_y[id-{uuid},smoke]"]}))
    g = run.load_guideline(path)
    assert g.caps == {"cap": ["tempest.api.x.T.test_y"]}
    assert g.ids == {"tempest.api.x.T.test_y": uuid}


def test_guideline_choice_default_named_and_by_path(capsys):
    default = run.load_guidelines("")
    assert [(g.name, g.service, g.named) for g in default] == [
        ("platform", None, False), ("orchestration", "orchestration", False),
        ("telemetry", "alarming", False)]
    [named] = run.load_guidelines("orchestration")
    assert (named.name, named.service, named.named) == ("orchestration", "orchestration", True)
    [by_path] = run.load_guidelines(str(ORCHESTRATION))
    assert (by_path.name, by_path.service) == ("orchestration", "orchestration")
    with pytest.raises(SystemExit) as exc:
        run.load_guidelines("dns-zones")
    assert exc.value.code == 2 and "no guideline dns-zones" in capsys.readouterr().err


def test_caps_select_across_guidelines(capsys):
    [g] = run.select_caps(run.load_guidelines(""), "stack-create,stack-tag")
    assert g.name == "orchestration" and list(g.caps) == ["stack-create", "stack-tag"]
    [g] = run.select_caps(run.load_guidelines(""), "identity-v3-*")
    assert g.name == "platform"
    with pytest.raises(SystemExit):
        run.select_caps(run.load_guidelines(""), "identity-v3-*,no-such-cap")
    assert "no capability matches no-such-cap" in capsys.readouterr().err


def test_resolve_by_name_then_idempotent_id_then_method():
    gabbi = "heat_tempest_plugin.tests.api.test_heat_api.stacks_create_empty_stack.test_request"
    listed = [
        f"{gabbi}[id-bde1b827-65fb-47ea-909f-82537e6260d3]",
        f"{TYPO}[id-6ca8ddfc-106f-4ecc-83f7-fca31d0c85ca]",
        "tempest.api.compute.servers.test_new.ServersTest.test_list[id-33333333-3333-3333-3333-333333333333]",
    ]
    wanted = {gabbi, TYPO + ":Wherej", "tempest.api.compute.servers.test_old.ServersTest.test_list"}
    full, moved = run.resolve(wanted, listed, {TYPO + ":Wherej": "6ca8ddfc-106f-4ecc-83f7-fca31d0c85ca"})
    assert full[gabbi] == listed[0] and gabbi not in moved
    assert full[TYPO + ":Wherej"] == listed[1] and moved[TYPO + ":Wherej"] == TYPO
    assert moved["tempest.api.compute.servers.test_old.ServersTest.test_list"] == listed[2].split("[")[0]


def test_missing_test_is_skipped_naming_the_plugin_version():
    test = "heat_tempest_plugin.tests.functional.test_x.X.test_gone"
    result, _ = run.outcomes({test}, {}, {}, {"tempest": "47.0.0", "heat-tempest-plugin": "3.0.0"})
    assert result[test] == run.Outcome("skipped", "not in heat-tempest-plugin 3.0.0")


def test_group_regex_keeps_each_gabbi_file_on_one_worker():
    group = re.compile(run.GROUP_REGEX)

    def key(test_id):
        return group.match(test_id).group(0)

    api = "heat_tempest_plugin.tests.api.test_heat_api."
    assert key(api + "stacks_create_empty_stack.test_request[id-1]") == api + "stacks"
    assert key(api + "stacks_delete_stack.test_request[id-2]") == api + "stacks"
    assert key(api + "resources_list.test_request[id-3]") == api + "resources"
    # everything else: by class, as Tempest groups
    assert key("tempest.api.compute.test_x.XTest.test_y[id-4]") == "tempest.api.compute.test_x.XTest."
    assert key("heat_tempest_plugin.tests.functional.test_hooks.HooksTest.test_hook_pre_create[id-5]") \
        == "heat_tempest_plugin.tests.functional.test_hooks.HooksTest."


ADMIN = run.Creds("http://127.0.0.1:9/identity/v3", "admin", "a$pw", "admin")
DEMO = run.Creds("http://127.0.0.1:9/identity/v3", "demo", "dpw", "demo")
TINY = "/image/v2/images?name=onestack-tiny-x86_64&status=active&visibility=public"


def _heat_cloud():
    flavors = [{"id": "2", "name": "m1.small", "ram": 2048}, {"id": "42", "name": "m1.nano", "ram": 128},
               {"id": "84", "name": "m1.micro", "ram": 192}]
    return FakeCloud(["identity", "compute", "image", "network", "orchestration"], {
        "/compute/v2.1/flavors/detail": {"flavors": flavors},
        TINY: {"images": [{"id": "img-tiny"}]},
    })


def _demo_cloud(networks):
    return FakeCloud(["network"], {
        "/network/v2.0/networks": {"networks": networks},
        "/network/v2.0/subnets?network_id=n-private": {"subnets": [{"name": "private-subnet"}]},
    })


def test_heat_options_from_the_cloud(monkeypatch):
    networks = [
        {"id": "n-public", "name": "public", "router:external": True, "project_id": ""},
        {"id": "n-other", "name": "alpha", "router:external": False, "project_id": "p-demo"},
        {"id": "n-private", "name": "private", "router:external": False, "project_id": "p-demo"},
        {"id": "n-shared", "name": "shared", "router:external": False, "project_id": "p-else"},
    ]
    monkeypatch.setattr(run, "connect", lambda creds: _demo_cloud(networks))
    options = run.heat_options(ADMIN, DEMO, _heat_cloud())
    assert options["auth_url"] == "http://127.0.0.1:9/identity/v3"
    assert (options["username"], options["password"], options["project_name"]) == ("demo", "dpw", "demo")
    assert (options["admin_username"], options["admin_project_name"]) == ("admin", "admin")
    assert options["user_domain_name"] == options["project_domain_name"] == "Default"
    assert options["region"] == "RegionOne" and options["auth_version"] == "3"
    assert (options["minimal_instance_type"], options["instance_type"]) == ("m1.nano", "m1.micro")
    assert options["minimal_image_ref"] == options["image_ref"] == "img-tiny"
    assert options["fixed_network_name"] == options["network_for_ssh"] == "private"
    assert options["fixed_subnet_name"] == "private-subnet"
    assert options["floating_network_name"] == "public"
    assert options["skip_functional_tests"] == options["skip_scenario_tests"] == "false"
    assert options["hidden_stack_tag"] == "hidden"


def test_heat_options_without_the_tiny_image_or_a_demo_network(monkeypatch, capsys):
    cloud = _heat_cloud()
    cloud.docs[TINY] = {"images": []}
    cloud.docs["/image/v2/images?status=active&visibility=public"] = {"images": [{"id": "img-any"}]}
    monkeypatch.setattr(run, "connect", lambda creds: _demo_cloud([]))
    options = run.heat_options(ADMIN, DEMO, cloud)
    assert options["minimal_image_ref"] == "img-any"
    assert "fixed_network_name" not in options
    assert "the demo project has no network of its own" in capsys.readouterr().out


def test_orchestration_workspace_conf(monkeypatch, tmp_path):
    """The written tempest-orchestration.conf: every [heat_plugin] and [service_available]
    option is one the installed heat-tempest-plugin and Tempest define (none dropped), and it
    reads back as written."""
    monkeypatch.setattr(run, "WORKSPACE", tmp_path)
    private = {"id": "n-private", "name": "private", "project_id": "p-demo"}
    monkeypatch.setattr(run, "connect", lambda creds: _demo_cloud([private]))
    facts = run.tempest_facts(run.ensure_tempest())
    assert facts["versions"]["heat-tempest-plugin"]
    conf = run.tempest_conf(ADMIN, FakeCloud(["identity", "orchestration"]), static_accounts=False)
    conf["heat_plugin"] = run.heat_options(ADMIN, DEMO, _heat_cloud())
    wanted = {s: dict(conf[s]) for s in ("heat_plugin", "service_available")}
    run.drop_unknown(conf, facts["options"], run.versions_label(facts["versions"]))
    assert {s: conf[s] for s in wanted} == wanted
    path = run.write_workspace(conf, facts["package"], [], "tempest-orchestration.conf")
    assert path == tmp_path / "etc" / "tempest-orchestration.conf"
    assert path.stat().st_mode & 0o777 == 0o600
    parser = configparser.RawConfigParser()
    parser.read(path)
    assert parser["service_available"]["heat"] == "true"
    assert parser["heat_plugin"]["admin_password"] == "a$$pw"  # oslo.config reads a$pw
    assert parser["heat_plugin"]["minimal_image_ref"] == "img-tiny"
    assert parser["heat_plugin"]["catalog_type"] == "orchestration"
    stestr = configparser.ConfigParser()  # as stestr reads it
    stestr.read(tmp_path / ".stestr.conf")
    assert stestr["DEFAULT"]["group_regex"] == run.GROUP_REGEX


def test_telemetry_selection_and_workspace_conf(monkeypatch, tmp_path):
    """telemetry.json: Aodh's API tests and Gnocchi's gabbi files run, the integration
    scenarios are left out, each with a reason; every option written for the plugin is one the
    installed telemetry-tempest-plugin defines (none dropped)."""
    path = run.GUIDELINES["telemetry"][0]
    g = run.load_guideline(path, "telemetry", "alarming")
    assert "metric-gabbi" not in g.caps and "telemetry-integration" not in g.caps
    assert len(g.tests()) == 46 and all(".aodh.api." in t for t in g.tests())
    listed = json.loads(path.read_text())["capabilities"]
    excluded = [t for cap in ("metric-gabbi", "telemetry-integration")
                for t in listed[cap]["tests"].values()]
    assert len(excluded) == 6 and all(t["flagged"]["reason"] for t in excluded)
    monkeypatch.setattr(run, "WORKSPACE", tmp_path)
    facts = run.tempest_facts(run.ensure_tempest())
    assert facts["versions"]["telemetry-tempest-plugin"]
    conf = run.tempest_conf(ADMIN, FakeCloud(["identity", "alarming", "metric"]), False)
    conf.update({s: dict(o) for s, o in run.TELEMETRY_SECTIONS.items()})
    wanted = {s: dict(conf[s]) for s in (*run.TELEMETRY_SECTIONS, "service_available")}
    run.drop_unknown(conf, facts["options"], run.versions_label(facts["versions"]))
    assert {s: conf[s] for s in wanted} == wanted
    available = conf["service_available"]
    assert (available["aodh"], available["gnocchi"], available["ceilometer"]) == (
        "true", "true", "false")


def test_platform_conf_says_heat_is_absent_without_orchestration():
    conf = run.tempest_conf(ADMIN, FakeCloud(["identity"]), static_accounts=False)
    assert conf["service_available"]["heat"] == "false" and "heat_plugin" not in conf


def _main(monkeypatch, capsys, tmp_path, argv, types):
    """run.main against a cloud offering `types`; each guideline's run is faked as all
    passed."""
    setup = run.SetUp(None, {"versions": {}}, ADMIN, [], FakeCloud(types), None)
    monkeypatch.setattr(run, "WORKSPACE", tmp_path)
    monkeypatch.setattr(run, "set_up", lambda args: setup)
    ran = []

    def fake_run(args, setup, g, deadline):
        ran.append(g.name)
        return run.Run(g, {t: run.Outcome("passed") for t in g.tests()})

    monkeypatch.setattr(run, "run_guideline", fake_run)
    code = run.main(argv)
    return code, ran, capsys.readouterr().out.strip().splitlines()


@pytest.fixture
def default_guidelines(monkeypatch):
    monkeypatch.delenv("GUIDELINE", raising=False)
    monkeypatch.delenv("INTEROP_GUIDELINE", raising=False)


def test_addon_not_offered_is_a_note_by_default(monkeypatch, capsys, tmp_path, default_guidelines):
    code, ran, lines = _main(monkeypatch, capsys, tmp_path, ["--caps", "identity-v3-*,stack-*"],
                             ["identity"])
    assert code == 0 and ran == ["platform"]
    assert lines[-2:] == ["orchestration: not offered by this cloud", lines[-1]]
    assert re.fullmatch(r"[1-9]\d* passed, 0 failed", lines[-1])


def test_addon_not_offered_when_asked_for_fails(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("GUIDELINE", "orchestration")
    code, ran, lines = _main(monkeypatch, capsys, tmp_path, [], ["identity", "compute"])
    assert code == 1 and ran == []
    assert lines == ["orchestration: not offered by this cloud", "0 passed, 0 failed"]


def test_both_guidelines_run_when_offered(monkeypatch, capsys, tmp_path, default_guidelines):
    code, ran, lines = _main(monkeypatch, capsys, tmp_path,
                             ["--caps", "identity-v3-tokens-*,stack-*"], ["identity", "orchestration"])
    [platform] = run.select_caps([run.load_guideline(PLATFORM)], "identity-v3-tokens-*")
    n = len(platform.tests())
    assert code == 0 and ran == ["platform", "orchestration"]
    assert "stack-create: 3 passed, 0 failed" in lines
    assert lines[-3:] == [f"guideline platform: {n} passed, 0 failed",
                          "guideline orchestration: 60 passed, 0 failed",
                          f"{n + 60} passed, 0 failed"]


def test_list_shows_both_guidelines(capsys, default_guidelines):
    assert run.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "guideline platform (78 capabilities" in out
    assert ("guideline orchestration (23 capabilities, 60 distinct tests, run when the catalog "
            "offers orchestration):") in out
