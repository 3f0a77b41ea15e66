"""The browser client's home in the cloud: a private bucket read only by one
CloudFront distribution (Origin Access Control), and its config.json made
from the stack's outputs by scripts/frontend_config.py."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "frontend_config.py"


def load_script():
    spec = importlib.util.spec_from_file_location("frontend_config", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def describe_stacks(**values: str) -> dict[str, Any]:
    """What `aws cloudformation describe-stacks --stack-name X` prints."""
    return {
        "Stacks": [
            {
                "StackName": "aurorachat-dev",
                "StackStatus": "CREATE_COMPLETE",
                "Outputs": [
                    {"OutputKey": k, "OutputValue": v, "Description": "..."}
                    for k, v in values.items()
                ],
            }
        ]
    }


SAMPLE = describe_stacks(
    ApiUrl="https://abc123.execute-api.eu-west-1.amazonaws.com/dev",
    WebSocketUrl="wss://chat-ws.example.com",
    FrontendUrl="https://d111111abcdef8.cloudfront.net",
    FrontendBucketName="aurorachat-dev-frontendbucket-1a2b3c",
    AttachmentsBucketName="aurorachat-dev-attachmentsbucket-4d5e6f",
)


def test_the_bucket_is_private_and_only_the_distribution_reads_it(transformed):
    resources = transformed["Resources"]
    bucket = resources["FrontendBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert "WebsiteConfiguration" not in bucket  # never a public website endpoint

    config = resources["FrontendDistribution"]["Properties"]["DistributionConfig"]
    (origin,) = config["Origins"]
    assert origin["DomainName"] == {"Fn::GetAtt": ["FrontendBucket", "RegionalDomainName"]}
    assert origin["OriginAccessControlId"] == {"Fn::GetAtt": ["FrontendOriginAccessControl", "Id"]}
    assert origin["S3OriginConfig"]["OriginAccessIdentity"] == ""
    oac = resources["FrontendOriginAccessControl"]["Properties"]["OriginAccessControlConfig"]
    assert (oac["OriginAccessControlOriginType"], oac["SigningBehavior"]) == ("s3", "always")
    behaviour = config["DefaultCacheBehavior"]
    assert behaviour["ViewerProtocolPolicy"] == "redirect-to-https"
    assert behaviour["AllowedMethods"] == ["GET", "HEAD"]
    assert config["DefaultRootObject"] == "index.html"

    (statement,) = resources["FrontendBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert statement["Action"] == "s3:GetObject"
    source = statement["Condition"]["StringEquals"]["AWS:SourceArn"]["Fn::Sub"]
    assert source.endswith(":distribution/${FrontendDistribution}")


def test_the_outputs_give_the_frontend_url_bucket_and_distribution(transformed):
    outputs = transformed["Outputs"]
    assert {"FrontendUrl", "FrontendBucketName", "FrontendDistributionId"} <= set(outputs)
    assert "FrontendDistribution.DomainName" in outputs["FrontendUrl"]["Value"]["Fn::Sub"]


def test_config_json_comes_from_the_outputs_the_template_declares(template):
    script = load_script()
    declared = set(template["Outputs"])
    assert {"ApiUrl", "WebSocketUrl"} <= declared  # the outputs the script reads
    assert script.frontend_config(script.outputs(SAMPLE)) == {
        "api_url": "https://abc123.execute-api.eu-west-1.amazonaws.com/dev",
        "ws_url": "wss://chat-ws.example.com",
    }


def test_config_json_has_the_keys_the_browser_client_reads():
    source = (ROOT / "frontend").rglob("*.js")
    reads = "".join(p.read_text() for p in source)
    config = load_script().frontend_config(load_script().outputs(SAMPLE))
    for key in config:
        assert f"data.{key}" in reads, key


def test_without_a_fanout_in_the_stack_a_websocket_url_must_be_given():
    script = load_script()
    no_fanout = script.outputs(
        describe_stacks(
            ApiUrl="https://abc.execute-api.us-east-1.amazonaws.com/dev",
            WebSocketUrl="not deployed here (DeployFanout=false)",
        )
    )
    with pytest.raises(ValueError, match="--ws-url"):
        script.frontend_config(no_fanout)
    given = script.frontend_config(no_fanout, "wss://ws.example.com/")
    assert given["ws_url"] == "wss://ws.example.com"


def test_the_script_reads_describe_stacks_from_stdin_and_prints_config_json():
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "-"], input=json.dumps(SAMPLE),
        capture_output=True, text=True, check=False, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ws_url"] == "wss://chat-ws.example.com"
    refused = subprocess.run(
        [sys.executable, str(SCRIPT), "-"], input=json.dumps({"Stacks": []}),
        capture_output=True, text=True, check=False, timeout=30,
    )  # fmt: skip
    assert refused.returncode != 0 and "one stack" in refused.stderr
