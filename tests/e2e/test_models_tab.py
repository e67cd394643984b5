"""The Models tab: create, name checks, rename, duplicate, delete/undo/restore/empty, add layers."""

import pytest
from e2e_support import create_in_ui, eventually, panel_select
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

NAME_RULE_PART = "letters, digits, spaces"


def page_text_everywhere(page) -> str:
    """All text on the page, hidden tabs included, plus every option and input value."""
    return page.evaluate(
        """() => [
            document.body.textContent,
            ...[...document.querySelectorAll('option')].map(o => o.value + ' ' + o.textContent),
            ...[...document.querySelectorAll('input, textarea')].map(i => i.value),
        ].join('\\n')"""
    )


def test_create_with_name_and_shape(page, app):
    create_in_ui(page, "Shakespeare Small", n_layer=2, n_head=2, n_embd=64, block_size=64)

    _, model = app.api("GET", "/api/models/Shakespeare Small", expect_status=200)
    assert (model["n_layer"], model["n_head"], model["n_embd"], model["block_size"]) == (
        2,
        2,
        64,
        64,
    )
    assert (app.home / "models" / "Shakespeare Small" / "model.safetensors").is_file()

    row = page.locator('#panel-models tr[data-model="Shakespeare Small"]')
    expect(row).to_be_visible()
    expect(row.locator("td").nth(1)).to_have_text("2")
    details = page.get_by_test_id("details")
    expect(details.get_by_test_id("details-n_layer")).to_have_text("2")
    params = details.get_by_test_id("details-params")
    expect(params).to_have_attribute("data-value", str(model["n_params"]))
    formatted = page.evaluate("n => new Intl.NumberFormat().format(n)", model["n_params"])
    expect(params).to_contain_text(formatted)
    # The shared selection on the server follows.
    eventually(lambda: app.api("GET", "/api/settings")[1]["selected_model"] == "Shakespeare Small")


def test_live_name_validation_and_default_names(page, app):
    name = page.get_by_test_id("create-name")
    message = page.get_by_test_id("create-name-message")
    button = page.get_by_test_id("create-button")
    expect(name).to_have_value("model_1")
    expect(button).to_be_enabled()

    name.fill("bad/name")
    expect(message).to_contain_text(NAME_RULE_PART)
    expect(message).to_contain_text("'/'")
    expect(button).to_be_disabled()

    name.fill(" leading space")
    expect(message).to_contain_text("starts or ends with a space")
    expect(button).to_be_disabled()

    name.fill("model_1")
    expect(button).to_be_enabled()
    expect(message).to_have_text("")
    button.click()
    expect(page.get_by_test_id("details-name")).to_have_text("model_1")
    expect(name).to_have_value("model_2")
    assert app.model_names() == ["model_1"]

    name.fill("MODEL_1")  # taken, in another case
    expect(message).to_contain_text("already exists")
    expect(button).to_be_disabled()
    name.press("Enter")  # a disabled form does not submit
    name.fill("A fine name")
    expect(message).to_have_text("")
    expect(button).to_be_enabled()
    assert app.model_names() == ["model_1"]

    # A server-side refusal of the shape is shown, not swallowed.
    page.get_by_test_id("create-n_head").fill("3")
    button.click()
    expect(page.get_by_test_id("create-error")).to_contain_text("multiple of n_head")
    assert app.model_names() == ["model_1"]


def test_rename_in_place(page, app):
    app.create("Old Name 7")
    app.create("Other model")
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    page.click('#panel-models tr[data-model="Old Name 7"]')
    title = page.get_by_test_id("details-name")
    expect(title).to_have_text("Old Name 7")

    # Double-click opens the editor; Escape cancels without a change.
    title.dblclick()
    field = page.get_by_test_id("rename-input")
    expect(field).to_be_focused()
    field.fill("Something Else")
    field.press("Escape")
    expect(title).to_have_text("Old Name 7")
    assert "Something Else" not in app.model_names()

    # The Rename button, live validation (a taken name in another case), then Enter saves.
    page.get_by_test_id("rename-button").click()
    field = page.get_by_test_id("rename-input")
    field.fill("OTHER MODEL")
    expect(page.get_by_test_id("rename-message")).to_contain_text("already exists")
    expect(page.get_by_test_id("rename-save")).to_be_disabled()
    field.fill("Fresh Name 8")
    expect(page.get_by_test_id("rename-message")).to_have_text("")
    field.press("Enter")
    expect(title).to_have_text("Fresh Name 8")
    expect(page.locator('#panel-models tr[data-model="Fresh Name 8"]')).to_have_attribute(
        "aria-selected", "true"
    )

    for tab in ("models", "training", "crawler", "llm", "research"):
        expect(panel_select(page, tab)).to_have_value("Fresh Name 8")
        expect(panel_select(page, tab).locator("option")).to_contain_text(
            ["Fresh Name 8", "Other model"]
        )
    # Views that ask the server again after a rename (research notes, lineage) catch up within moments.
    eventually(lambda: "Old Name 7" not in page_text_everywhere(page), timeout=5)

    assert sorted(app.model_names()) == ["Fresh Name 8", "Other model"]
    assert (app.home / "models" / "Fresh Name 8").is_dir()
    assert not (app.home / "models" / "Old Name 7").exists()


def test_duplicate_selects_copy_with_lineage(page, app):
    create_in_ui(page, "Source A", n_layer=3)
    page.get_by_test_id("duplicate-button").click()

    expect(page.get_by_test_id("details-name")).to_have_text("Source A-copy")
    expect(page.locator('#panel-models tr[data-model="Source A-copy"]')).to_have_attribute(
        "aria-selected", "true"
    )
    expect(panel_select(page, "models")).to_have_value("Source A-copy")
    expect(page.get_by_test_id("lineage-from")).to_have_text("Source A")
    expect(page.get_by_test_id("lineage-events")).to_contain_text("Duplicated from Source A")

    _, copy = app.api("GET", "/api/models/Source A-copy", expect_status=200)
    assert copy["duplicated_from"] == "Source A"
    assert copy["n_layer"] == 3
    # The source's details list the copy; the link selects it.
    page.get_by_test_id("lineage-from").get_by_role("button").click()
    expect(page.get_by_test_id("details-name")).to_have_text("Source A")
    expect(page.get_by_test_id("lineage-duplicates")).to_have_text("Source A-copy")


def test_a_click_is_kept_when_the_details_are_redrawn_between_mouse_down_and_up(page, app):
    """A click fires only when mouse-down and mouse-up land on one element. The details panel is
    redrawn whenever the model changes (and when its lineage arrives); a Duplicate pressed just
    then was lost once on a loaded machine. Buttons drawn the same are now kept across a redraw."""
    create_in_ui(page, "Source B")
    box = page.get_by_test_id("duplicate-button").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    # The model changes elsewhere while the button is held: the panel is drawn again.
    app.api("PATCH", "/api/models/Source B", {"target_epochs": 3}, expect_status=200)
    expect(page.get_by_test_id("details-epochs")).to_contain_text("of 3 target")
    page.mouse.up()
    expect(page.get_by_test_id("details-name")).to_have_text("Source B-copy")
    assert "Source B-copy" in app.model_names()


def test_delete_confirm_undo_restore_and_empty_trash(page, app):
    app.create("Doomed")
    app.create("Keeper")
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    row = page.locator('#panel-models tr[data-model="Doomed"]')
    row.click()

    # Cancel: nothing happens.
    page.get_by_test_id("delete-button").click()
    dialog = page.locator("dialog[open]")
    expect(dialog).to_contain_text("Doomed")
    expect(dialog).to_contain_text("trash")
    dialog.get_by_test_id("dialog-cancel").click()
    expect(dialog).to_have_count(0)
    assert sorted(app.model_names()) == ["Doomed", "Keeper"]
    expect(row).to_be_visible()

    # Confirm: gone to the trash; Undo brings it back.
    page.get_by_test_id("delete-button").click()
    page.locator("dialog[open]").get_by_test_id("dialog-confirm").click()
    expect(row).to_have_count(0)
    assert app.model_names() == ["Keeper"]
    assert not (app.home / "models" / "Doomed").exists()
    toast = page.get_by_test_id("toast").filter(has_text="Deleted Doomed")
    expect(toast).to_be_visible()
    expect(page.get_by_test_id("trash").locator('tr[data-trash-name="Doomed"]')).to_be_visible()
    toast.get_by_role("button", name="Undo").click()
    expect(row).to_be_visible()
    expect(page.get_by_test_id("details-name")).to_have_text("Doomed")
    assert sorted(app.model_names()) == ["Doomed", "Keeper"]
    assert (app.home / "models" / "Doomed").is_dir()
    expect(page.get_by_test_id("trash")).to_contain_text("The trash is empty")

    # Delete again, then restore from the Trash section.
    page.get_by_test_id("delete-button").click()
    page.locator("dialog[open]").get_by_test_id("dialog-confirm").click()
    expect(row).to_have_count(0)
    trash_row = page.get_by_test_id("trash").locator('tr[data-trash-name="Doomed"]')
    trash_row.get_by_test_id("restore-button").click()
    expect(row).to_be_visible()
    assert sorted(app.model_names()) == ["Doomed", "Keeper"]

    # Delete both, then empty the trash (cancel first, then confirm).
    for name in ("Doomed", "Keeper"):
        page.click(f'#panel-models tr[data-model="{name}"]')
        expect(page.get_by_test_id("details-name")).to_have_text(name)
        page.get_by_test_id("delete-button").click()
        page.locator("dialog[open]").get_by_test_id("dialog-confirm").click()
        expect(page.locator(f'#panel-models tr[data-model="{name}"]')).to_have_count(0)
    assert len(app.api("GET", "/api/trash")[1]["trash"]) == 2
    page.get_by_test_id("empty-trash").click()
    page.locator("dialog[open]").get_by_test_id("dialog-cancel").click()
    assert len(app.api("GET", "/api/trash")[1]["trash"]) == 2
    page.get_by_test_id("empty-trash").click()
    expect(page.locator("dialog[open]")).to_contain_text("cannot be undone")
    page.locator("dialog[open]").get_by_test_id("dialog-confirm").click()
    expect(page.get_by_test_id("trash")).to_contain_text("The trash is empty")
    assert app.api("GET", "/api/trash")[1]["trash"] == []
    assert list((app.home / "trash").iterdir()) == []
    expect(page.get_by_test_id("models-table")).to_contain_text("No models yet")


def test_restore_under_a_new_name_when_taken(page, app):
    app.create("Twin")
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    page.click('#panel-models tr[data-model="Twin"]')
    page.get_by_test_id("delete-button").click()
    page.locator("dialog[open]").get_by_test_id("dialog-confirm").click()
    create_in_ui(page, "twin")  # takes the name (names ignore case)

    page.get_by_test_id("trash").locator('tr[data-trash-name="Twin"]').get_by_test_id(
        "restore-button"
    ).click()
    dialog = page.locator("dialog[open]")
    expect(dialog).to_contain_text("exists now")
    field = dialog.get_by_test_id("dialog-input")
    field.fill("TWIN")
    expect(dialog.get_by_test_id("dialog-message")).to_contain_text("already exists")
    expect(dialog.get_by_test_id("dialog-confirm")).to_be_disabled()
    field.fill("Twin restored")
    expect(dialog.get_by_test_id("dialog-confirm")).to_be_enabled()
    dialog.get_by_test_id("dialog-confirm").click()
    expect(page.get_by_test_id("details-name")).to_have_text("Twin restored")
    assert sorted(app.model_names()) == sorted(["twin", "Twin restored"])


def test_add_layers_never_remove(page, app):
    create_in_ui(page, "Grower", n_layer=4)
    rule = page.get_by_test_id("layer-rule")
    expect(rule).to_have_text(
        "Layers can be added, never removed. New layers start as identities, "
        "so the model computes exactly what it did."
    )
    field = page.get_by_test_id("add-layers-input")
    expect(field).to_have_attribute("min", "4")
    apply = page.get_by_test_id("add-layers-apply")
    expect(apply).to_be_disabled()  # nothing to change yet

    field.fill("2")
    message = page.get_by_test_id("add-layers-message")
    expect(message).to_contain_text("never removed")
    apply.click()
    expect(message).to_have_text(
        "Layers can be added, never removed: 'Grower' has 4 and 2 was asked for"
    )
    assert app.api("GET", "/api/models/Grower")[1]["n_layer"] == 4

    field.fill("6")
    expect(message).to_have_text("")
    apply.click()
    expect(page.get_by_test_id("details-n_layer")).to_have_text("6")
    _, model = app.api("GET", "/api/models/Grower", expect_status=200)
    assert model["n_layer"] == 6
    expect(page.get_by_test_id("details-params")).to_have_attribute(
        "data-value", str(model["n_params"])
    )
    expect(page.locator('#panel-models tr[data-model="Grower"] td').nth(1)).to_have_text("6")
    expect(page.get_by_test_id("lineage-events")).to_contain_text("Layers grown from 4 to 6")
    expect(page.get_by_test_id("add-layers-input")).to_have_attribute("min", "6")


def test_sort_by_columns(page, app):
    app.create("bravo", n_layer=2)
    app.create("alpha", n_layer=8)
    app.create("charlie", n_layer=1)
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    rows = page.locator("#panel-models tbody tr[data-model]")
    expect(rows).to_have_count(3)
    names = lambda: rows.evaluate_all("rs => rs.map(r => r.dataset.model)")  # noqa: E731
    assert names() == ["alpha", "bravo", "charlie"]
    page.click('#panel-models th button[data-sort="name"]')
    expect(rows.first).to_have_attribute("data-model", "charlie")
    page.click('#panel-models th button[data-sort="size"]')  # largest first
    expect(rows.first).to_have_attribute("data-model", "alpha")
    assert names() == ["alpha", "bravo", "charlie"]
    page.click('#panel-models th button[data-sort="created"]')  # newest first
    expect(rows.first).to_have_attribute("data-model", "charlie")
    assert names() == ["charlie", "alpha", "bravo"]
    expect(page.locator('#panel-models th[aria-sort="descending"]')).to_contain_text("Created")
