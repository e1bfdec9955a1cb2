"""The dashboard in a real browser (Debian's chromium, headless, driven by Playwright for
Python): the book's walk-through as the demo user on simulated hosts. Log in, launch an
instance from the form and see it ACTIVE in the list that refreshes itself, create a
volume and attach it, allocate a floating IP and associate it, create a container and
upload and download an object, download openrc, launch a stack from a template file.
Screenshots of each step go to .artifacts/dashboard/ (kept as test artefacts)."""

from __future__ import annotations

import re
import subprocess
import uuid

import pytest

from tests.cloud import REPO, wait_for

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (make install-test)")
expect = sync_api.expect

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / ".artifacts" / "dashboard"
WAIT = 60_000  # ms: bounded waits on a condition (the list refreshes itself)


@pytest.fixture(scope="module")
def image(cloud, tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "walk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "16M"], check=True)
    img = cloud.os_json("image", "create", "--disk-format", "qcow2", "--container-format", "bare", "--public",
                        "--file", str(path), f"walk-{uuid.uuid4().hex[:6]}")
    yield img
    cloud.openstack("image", "delete", img["id"], check=False)


@pytest.fixture(scope="module")
def page():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as pw:
        # Debian's chromium: Playwright's own browser download is not used
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
        context.set_default_timeout(WAIT)
        p = context.new_page()
        p.on("dialog", lambda d: d.accept())
        errors: list[str] = []
        p.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        p.console_errors = errors
        yield p
        context.close()
        browser.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.mark.tools("chromium")
def test_walk_through_as_demo(cloud, page, image):
    name = f"web-{uuid.uuid4().hex[:4]}"
    page.goto(f"{cloud.url}/")  # a browser at the root is sent to the dashboard's login
    expect(page).to_have_url(re.compile(r"/dashboard/login"))
    page.fill("input[name=username]", "demo")
    page.fill("input[name=password]", cloud.password("demo"))
    shot(page, "01-login")
    page.click("button:text('Log in')")
    expect(page.locator("h1")).to_have_text("Overview of project demo")
    expect(page.locator(".gauge[data-label=Instances]")).to_contain_text("Used 0 of")
    shot(page, "02-overview")

    page.click("nav >> text=Instances")
    form = page.locator("#launch")
    form.locator("input[name=name]").fill(name)
    form.locator("select[name=image]").select_option(label=image["name"])
    form.locator("select[name=flavor]").select_option(value="42")
    form.locator("select[name=network]").select_option(label="private")
    shot(page, "03-launch")
    form.locator("button[type=submit]").click()
    row = page.locator("#instances tbody tr", has_text=name)
    expect(row.locator(".status")).to_have_text("ACTIVE")  # the list refreshes itself
    shot(page, "04-instance-active")
    row.locator("a").click()  # its detail: overview, log, console, action log
    expect(page.locator("h1")).to_have_text(f"Instance {name}")
    expect(page.locator("#action-log")).to_contain_text("create")
    shot(page, "04b-instance-detail")

    page.click("nav >> text=Volumes")
    page.locator("#create-volume input[name=name]").fill(name + "-data")
    page.locator("#create-volume button[type=submit]").click()
    vol = page.locator("#volumes tbody tr", has_text=name + "-data")
    expect(vol.locator(".status")).to_have_text("available")
    vol.locator("select[name=server_id]").select_option(label=name)
    vol.locator("button:text('Attach')").click()
    vol = page.locator("#volumes tbody tr", has_text=name + "-data")
    expect(vol).to_contain_text(f"{name} on /dev/")
    shot(page, "05-volume-attached")

    page.click("nav >> text=Floating IPs")
    page.locator("#allocate button[type=submit]").click()
    fip = page.locator("#floating-ips tbody tr").first
    expect(fip.locator("select[name=server_id]")).to_be_visible()
    fip.locator("select[name=server_id]").select_option(label=name)
    fip.locator("button:text('Associate')").click()
    expect(page.locator("#floating-ips tbody tr", has_text=name).locator(".mapped")).to_contain_text(name)
    shot(page, "06-floating-ip")

    page.click("nav >> text=Network topology")
    expect(page.locator(f"#topology g.instance[data-name='{name}'] line")).to_have_count(1)  # on private
    shot(page, "06b-topology")

    page.click("nav >> text=Containers")
    page.locator("#create-container input[name=name]").fill(name)
    page.locator("#create-container button[type=submit]").click()
    expect(page.locator("h1")).to_contain_text(name)
    upload = ARTIFACTS / "hello.txt"
    upload.write_text("hello from the dashboard\n")
    page.locator("#upload input[type=file]").set_input_files(str(upload))
    page.locator("#upload button[type=submit]").click()  # the script posts it, then reloads
    expect(page.locator("#objects tr.object")).to_contain_text("hello.txt")
    with page.expect_download() as dl:
        page.locator("#objects tr.object a:text('Download')").click()
    assert dl.value.path().read_text() == "hello from the dashboard\n"
    shot(page, "07-container")

    page.click("nav >> text=API access")
    with page.expect_download() as dl:
        page.click("#openrc")
    rc = ARTIFACTS / "demo-openrc.sh"
    dl.value.save_as(rc)
    text = rc.read_text()
    assert "export OS_USERNAME=demo" in text and f"export OS_AUTH_URL={cloud.url}/identity/v3" in text
    shot(page, "08-api-access")

    # a stack from a template file (the page's script reads it into the form), live in the list
    page.click("nav >> text=Stacks")
    template = ARTIFACTS / "stack.yaml"
    template.write_text("heat_template_version: 2018-08-31\nresources:\n  word:\n    type: OS::Heat::RandomString\n")
    page.locator("#launch-stack input[name=name]").fill(name + "-stack")
    page.locator("#launch-stack input[type=file]").set_input_files(str(template))
    expect(page.locator("#launch-stack textarea[name=template]")).to_have_value(template.read_text())
    page.locator("#launch-stack button[type=submit]").click()
    expect(page.locator("h1")).to_have_text(f"Stack {name}-stack")
    page.click("nav >> text=Stacks")
    stack = page.locator("#stacks tbody tr", has_text=name + "-stack")
    expect(stack.locator(".status")).to_have_text("CREATE_COMPLETE")
    shot(page, "09-stack")
    stack.locator("button:text('Delete')").click()
    expect(page.locator("#stacks tbody tr", has_text=name + "-stack")).to_have_count(0)
    # nothing the CSP refused (a fake host's console has no VNC server: its socket closes)
    refused = [m for m in page.console_errors if "Content Security Policy" in m or m.startswith("Refused")]
    assert not refused, refused

    # clean up through the dashboard too: delete the instance, then the CLI for the rest
    page.click("nav >> text=Instances")
    page.locator("#instances tbody tr", has_text=name).locator("button:text('Delete')").click()
    expect(page.locator("#instances tbody tr", has_text=name)).to_have_count(0)
    for fip_row in cloud.os_json("floating ip", "list", user="demo"):
        cloud.openstack("floating ip", "delete", fip_row["ID"], user="demo", check=False)
    wait_for(lambda: cloud.os_json("volume", "show", name + "-data", user="demo")["status"] == "available",
             60, "the volume detached from the deleted instance")
    cloud.openstack("volume", "delete", name + "-data", user="demo")
    cloud.openstack("object", "delete", name, "hello.txt", user="demo", check=False)
    cloud.openstack("container", "delete", name, user="demo", check=False)
