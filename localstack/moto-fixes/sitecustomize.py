"""Fixes to moto 5.2.5 applied when the emulator starts (PYTHONPATH names this directory; the installed package is
never edited). Each fix makes moto answer as AWS does where a test depends on it.

- CreateLaunchTemplateVersion keeps the version's UserData as the raw request string, unlike CreateLaunchTemplate,
  which parses it; an Auto Scaling group launching from such a version then fails with HTTP 500. Parse it the same
  way (issue 22: every release's version carries its user data).
"""


def _launch_template_version_user_data():
    try:
        from moto.ec2.models import launch_templates
        from moto.ec2.utils import parse_user_data
        from moto.core.types import Base64EncodedString
    except Exception:  # another moto: leave it as it is
        return
    original = launch_templates.LaunchTemplate.create_version

    def create_version(self, data, description):
        user_data = data.get("UserData") if isinstance(data, dict) else None
        if user_data is not None and not isinstance(user_data, Base64EncodedString):
            data = dict(data)
            data["UserData"] = parse_user_data(user_data)
        return original(self, data, description)

    launch_templates.LaunchTemplate.create_version = create_version


_launch_template_version_user_data()
