"""What JupyterLab shows a student who opens the lab after `pip install -r requirements.txt`."""

from lab_server import jupyterlab

NOTIFICATION = "/lab/api/settings/@jupyterlab/apputils-extension:notification"


def test_jupyterlab_asks_no_news_question_and_checks_no_updates(tmp_path):
    # The news question is shown while fetchNews is "none" (JupyterLab's announcements plugin); the lab's settings
    # package makes "false" the default, which a student's own Settings still override.
    (tmp_path / "home").mkdir()
    with jupyterlab(tmp_path, tmp_path / "home") as lab:
        schema = lab.get(NOTIFICATION)["schema"]["properties"]
    assert schema["fetchNews"]["default"] == "false"
    assert schema["checkForUpdates"]["default"] is False
