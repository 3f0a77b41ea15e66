"""Deploy checks: the SAM template, the nested fan-out template, the images and
the compose file, checked with the tools AWS and Docker ship, without an AWS
account or a Docker engine. Dummy credentials only; nothing is deployed."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from tests.support import ROOT
from tests.support.deploy import decode, python312_dir
from tests.support.settings import DUMMY_AWS


@pytest.fixture(scope="session")
def aws_env(tmp_path_factory) -> dict[str, str]:
    """An environment with dummy credentials, no telemetry, and no user config."""
    home = tmp_path_factory.mktemp("home")
    return {
        **os.environ,
        **DUMMY_AWS,
        "AWS_CONFIG_FILE": str(home / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
        "SAM_CLI_TELEMETRY": "0",
        "SAM_CLI_CONTACT_TRACKING": "0",
        "PATH": f"{python312_dir()}{os.pathsep}{os.environ.get('PATH', '')}",
    }


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    return decode(ROOT / "template.yaml")


@pytest.fixture(scope="session")
def fanout_template() -> dict[str, Any]:
    return decode(ROOT / "deploy" / "fanout.yaml")


@pytest.fixture(scope="session")
def transformed(template: dict[str, Any], aws_env) -> dict[str, Any]:
    """template.yaml as CloudFormation sees it after the SAM transform
    (samtranslator, the library behind `sam` and CloudFormation's own transform)."""
    from samtranslator.translator.transform import transform

    source = json.loads(json.dumps(template))
    # Local code paths become the S3 locations `sam package` would upload to.
    for name, resource in source["Resources"].items():
        props = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if key in props:
                props[key] = f"s3://aurorachat-artifacts/{name}.zip"
        if resource["Type"] == "AWS::Serverless::Application":
            props["Location"] = f"https://s3.amazonaws.com/aurorachat-artifacts/{name}.yaml"

    class NoManagedPolicies:
        """The transform asks IAM for managed policy ARNs only for names it does not know."""

        def load(self) -> dict[str, str]:
            return {}

    old = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    try:
        return transform(source, {}, NoManagedPolicies())
    finally:
        if old is None:
            del os.environ["AWS_DEFAULT_REGION"]
        else:
            os.environ["AWS_DEFAULT_REGION"] = old
