"""The browser client's home in the cloud: a private bucket read only by one
CloudFront distribution (Origin Access Control), and its config.json made
from the stack's outputs by scripts/frontend_config.py."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from local.gateway import content_security_policy
from tests.support.settings import DUMMY_AWS

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


# -- the page's Content-Security-Policy from CloudFront ----------------------------

CLOUD = {
    "HttpApi": "abc123",
    "AWS::Region": "eu-west-1",
    "AWS::URLSuffix": "amazonaws.com",
    "AttachmentsBucket": "aurorachat-attachments-x1",
    "FanoutService.Outputs.LoadBalancerDnsName": "fanout-lb-1.eu-west-1.elb.amazonaws.com",
}


def resolve(expression: Any, values: dict[str, str], conditions: dict[str, bool]) -> str:
    """The few intrinsic functions the policy uses, for given values and conditions."""
    if isinstance(expression, str):
        return expression
    ((function, argument),) = expression.items()
    if function == "Ref":
        return values[argument]
    if function == "Fn::If":
        name, then, otherwise = argument
        return resolve(then if conditions[name] else otherwise, values, conditions)
    assert function == "Fn::Sub", function
    text, variables = (argument, {}) if isinstance(argument, str) else argument
    values = values | {n: resolve(v, values, conditions) for n, v in variables.items()}
    return re.sub(r"\$\{([^}]+)\}", lambda m: values[m.group(1)], text)


def cloud_policy(template: dict[str, Any], values: dict[str, str], **conditions: bool) -> str:
    headers = template["Resources"]["FrontendHeadersPolicy"]["Properties"][
        "ResponseHeadersPolicyConfig"
    ]["SecurityHeadersConfig"]
    policy = resolve(headers["ContentSecurityPolicy"]["ContentSecurityPolicy"], values, conditions)
    return " ".join(policy.split())


def test_cloudfront_sends_the_local_stacks_policy_with_the_clouds_origins(template):
    distribution = template["Resources"]["FrontendDistribution"]["Properties"]
    behavior = distribution["DistributionConfig"]["DefaultCacheBehavior"]
    assert behavior["ResponseHeadersPolicyId"] == {"Ref": "FrontendHeadersPolicy"}
    headers = template["Resources"]["FrontendHeadersPolicy"]["Properties"][
        "ResponseHeadersPolicyConfig"
    ]["SecurityHeadersConfig"]
    assert headers["ContentSecurityPolicy"]["Override"] is True
    assert headers["FrameOptions"]["FrameOption"] == "DENY"

    api = "https://abc123.execute-api.eu-west-1.amazonaws.com/dev"
    buckets = [
        "https://aurorachat-attachments-x1.s3.eu-west-1.amazonaws.com",
        "https://aurorachat-attachments-x1.s3.amazonaws.com",
    ]
    load_balancer = "wss://fanout-lb-1.eu-west-1.elb.amazonaws.com"
    deployed = dict(WithWebSocketHost=False, WithFanout=True, WithFanoutTls=True)
    assert cloud_policy(template, CLOUD, **deployed) == content_security_policy(
        api, load_balancer, *buckets
    )
    named = CLOUD | {"WebSocketHost": "chat-ws.example.com"}
    assert cloud_policy(template, named, **deployed | {"WithWebSocketHost": True}) == (
        content_security_policy(api, "wss://chat-ws.example.com", *buckets)
    )


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
def test_the_policy_allows_the_s3_host_that_presigned_urls_name(template, region, monkeypatch):
    """Signed offline with dummy keys, as the attachments function signs on AWS."""
    from aurora.attachments import s3_client

    for name, value in DUMMY_AWS.items():
        monkeypatch.setenv(name, value)
    client = s3_client.__wrapped__("", region)  # not cached: dummy keys stay here
    bucket = CLOUD["AttachmentsBucket"]
    post = client.generate_presigned_post(bucket, "attachments/u/x.png", ExpiresIn=60)
    get = client.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "attachments/u/x.png"}, ExpiresIn=60
    )
    policy = cloud_policy(
        template, CLOUD | {"AWS::Region": region},
        WithWebSocketHost=False, WithFanout=False, WithFanoutTls=False,
    )  # fmt: skip
    (connect,) = [d.split()[1:] for d in policy.split(";") if d.split()[0] == "connect-src"]
    for url in (post["url"], get):
        parts = urlsplit(url)
        assert f"{parts.scheme}://{parts.netloc}" in connect, url
