"""The page registry is the one list of pages: every file in pages/ is registered, every registered
page has a file and a link on the home page."""
import os

from apptest_helpers import ROOT, open_app

from dashboard import page_registry


def test_every_page_file_is_registered_and_exists():
    files = {f"pages/{name}" for name in os.listdir(os.path.join(ROOT, "pages")) if name.endswith(".py")}
    registered = {p.file for p in (page_registry.HOME, *page_registry.PAGES)}
    assert files == registered
    ids = [p.id for p in page_registry.PAGES]
    assert len(ids) == len(set(ids))
    assert len({p.url_path for p in page_registry.PAGES}) == len(page_registry.PAGES)


def test_home_page_links_every_registered_page():
    at = open_app()
    assert not at.exception
    links = [el.proto.page for el in at.get("page_link")]
    for page in page_registry.PAGES:
        assert page.url_path in links, page
