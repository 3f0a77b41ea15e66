"""template.yaml and deploy/fanout.yaml: linted, transformed, and holding the
promises docs/deploy.md makes (routes, runtime, least privilege, alarms, outputs)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from local.template import functions
from tests.support import ROOT
from tests.support.deploy import decode, sam_binary

UNSCOPABLE_ACTIONS = {"ssm:DescribeParameters"}
HTTP_METHODS = {"get", "post", "put", "patch", "delete", "head", "options"}


def of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {n: r for n, r in template["Resources"].items() if r["Type"] == kind}


def test_cfn_lint_finds_nothing_in_either_template():
    result = subprocess.run(
        [Path(sys.executable).parent / "cfn-lint", "template.yaml", "deploy/fanout.yaml"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_sam_validate_with_lint_accepts_the_template(aws_env):
    result = subprocess.run(
        [sam_binary(), "validate", "--lint", "--template", "template.yaml"],
        cwd=ROOT, env=aws_env, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_every_function_runs_python_3_12_on_arm64_with_the_shared_layer(transformed):
    lambdas = of_type(transformed, "AWS::Lambda::Function")
    assert set(lambdas) == {
        "AuthFunction", "IngestFunction", "AttachmentsFunction", "MessagesFunction",
        "DocsFunction",
    }  # fmt: skip
    (layer,) = of_type(transformed, "AWS::Lambda::LayerVersion")
    for props in (r["Properties"] for r in lambdas.values()):
        assert props["Runtime"] == "python3.12"
        assert props["Architectures"] == ["arm64"]
        assert props["Layers"] == [{"Ref": layer}]
        env = props["Environment"]["Variables"]
        assert env["POWERTOOLS_SERVICE_NAME"] == "aurorachat"
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "AuroraChat"
        # Secrets travel as ARNs, never as values.
        assert "JWT_SECRET" not in env and "MONGO_URL" not in env


def test_the_layer_is_built_from_its_requirements(template):
    layer = template["Resources"]["SharedLayer"]
    assert layer["Metadata"]["BuildMethod"] == "python3.12"
    assert (ROOT / layer["Properties"]["ContentUri"] / "requirements.txt").exists()


def test_cors_origins_come_from_the_parameter(template):
    resources = template["Resources"]
    cors = resources["HttpApi"]["Properties"]["CorsConfiguration"]
    assert cors["AllowOrigins"] == {"Ref": "AllowedOrigins"}
    (bucket_rule,) = resources["AttachmentsBucket"]["Properties"]["CorsConfiguration"]["CorsRules"]
    assert bucket_rule["AllowedOrigins"] == {"Ref": "AllowedOrigins"}


def template_routes(transformed: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(METHOD, path) -> function name, from the HTTP API's generated OpenAPI body."""
    (api,) = of_type(transformed, "AWS::ApiGatewayV2::Api").values()
    routes = {}
    for path, methods in api["Properties"]["Body"]["paths"].items():
        for method, operation in methods.items():
            if method not in HTTP_METHODS:
                continue
            uri = operation["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
            routes[(method.upper(), path)] = re.search(r"\$\{(\w+)\.Arn\}", uri).group(1)
    return routes


# Run in a child interpreter: importing a handler builds Mangum, which sets an
# event loop on the importing thread; the test process must not keep one.
_ROUTES_OF = """
import importlib.util, json, sys
from fastapi.routing import APIRoute
from starlette.routing import Route
spec = importlib.util.spec_from_file_location("handler_module", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
app = getattr(module, "app", None)
routes = [r for r in getattr(app, "routes", []) if isinstance(r, Route)]
print(json.dumps({
    "api": [[m, r.path] for r in routes if isinstance(r, APIRoute) for m in sorted(r.methods)],
    "all": [[m, r.path] for r in routes for m in sorted(r.methods or ()) if m != "HEAD"],
}))
"""


def handler_routes() -> tuple[dict[tuple[str, str], str], set[tuple[tuple[str, str], str]]]:
    """From each function's FastAPI app: its API routes ((METHOD, path) -> function),
    and every route it answers, the API docs pages too (((METHOD, path), function)
    pairs: every app has its own docs pages)."""
    api, served = {}, set()
    for fn in functions(ROOT / "template.yaml"):
        module_file = fn.code_uri / (fn.handler.rsplit(".", 1)[0].replace(".", "/") + ".py")
        result = subprocess.run(
            [sys.executable, "-c", _ROUTES_OF, str(module_file)],
            capture_output=True, text=True, check=False,
            env={**os.environ, "POWERTOOLS_METRICS_NAMESPACE": "AuroraChat"},
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        found = json.loads(result.stdout.splitlines()[-1])
        api |= {(method, path): fn.name for method, path in found["api"]}
        served |= {((method, path), fn.name) for method, path in found["all"]}
    return api, served


def test_every_template_route_is_served_by_its_handler_and_every_handler_route_is_deployed(
    transformed,
):
    deployed = template_routes(transformed)
    api, served = handler_routes()
    # Each route API Gateway sends to a function is one that function answers...
    assert {route: fn for route, fn in deployed.items() if (route, fn) not in served} == {}
    # ...and every API route of every app is reachable (the docs pages may stay private).
    assert {route: fn for route, fn in api.items() if deployed.get(route) != fn} == {}


def test_the_drain_runs_on_the_schedule_parameter(transformed):
    (rule,) = of_type(transformed, "AWS::Events::Rule").values()
    assert rule["Properties"]["ScheduleExpression"] == {"Ref": "DrainSchedule"}
    ingest = transformed["Resources"]["IngestFunction"]["Properties"]
    assert ingest["Environment"]["Variables"]["DRAIN_BATCH_SIZE"] == {"Ref": "DrainBatchSize"}


def statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    """Every statement a role may hold, in either branch of a conditional policy."""
    policies = []
    for policy in role["Properties"].get("Policies", []):
        branches = policy["Fn::If"][1:] if "Fn::If" in policy else [policy]
        policies += [p for p in branches if isinstance(p, dict) and "PolicyDocument" in p]
    return [s for p in policies for s in p["PolicyDocument"]["Statement"]]


def container_env(container: dict[str, Any]) -> dict[str, Any]:
    """The task's environment, entries under a condition (`!If`) included."""
    entries = []
    for entry in container["Environment"]:
        branches = entry["Fn::If"][1:] if "Fn::If" in entry else [entry]
        entries += [e for e in branches if "Name" in e]  # not AWS::NoValue
    return {e["Name"]: e["Value"] for e in entries}


def test_each_function_may_do_only_what_it_needs(transformed):
    roles = of_type(transformed, "AWS::IAM::Role")
    granted = {
        name.removesuffix("Role"): sorted(
            (action, str(s["Resource"])) for s in statements(role) for action in s["Action"]
        )
        for name, role in roles.items()
    }
    for name, grants in granted.items():
        for action, resource in grants:
            assert "*" not in action, (name, action)
            # IAM cannot scope a few list actions (SAM's SSMParameterReadPolicy has one).
            assert resource != "*" or action in UNSCOPABLE_ACTIONS, (name, action)

    def actions(function: str) -> set[str]:
        return {a for a, _ in granted[function]}

    # Reading secrets (Secrets Manager, or SSM Parameter Store where configured).
    secret_reads = {"secretsmanager:GetSecretValue"} | {
        "ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath",
        "ssm:DescribeParameters",
    }  # fmt: skip
    assert "secretsmanager:GetSecretValue" in actions("AuthFunction") <= secret_reads
    assert actions("IngestFunction") == {"secretsmanager:GetSecretValue"}
    # History reads MongoDB and verifies tokens: secrets only, no S3.
    assert "secretsmanager:GetSecretValue" in actions("MessagesFunction") <= secret_reads
    messages_reads = [r for _, r in granted["MessagesFunction"]]
    assert any("MongoUriSecretArn" in r for r in messages_reads)
    s3 = {"s3:PutObject", "s3:GetObject"}
    assert s3 <= actions("AttachmentsFunction") <= secret_reads | s3
    # The attachments function reads only the JWT secret; in S3 it presigns
    # uploads under pending/ and downloads of checked files under attachments/.
    attach = [r for _, r in granted["AttachmentsFunction"]]
    assert not any("MongoUriSecretArn" in r for r in attach)
    s3_grants = {(a, r) for a, r in granted["AttachmentsFunction"] if "s3:" in a}
    assert {a for a, _ in s3_grants} == {"s3:PutObject", "s3:GetObject"}
    (put,) = [r for a, r in s3_grants if a == "s3:PutObject"]
    assert put.endswith("/pending/*'}")  # uploads land under pending/ only
    # The drain never verifies a token: no JWT secret for it.
    assert not any("JwtSecretArn" in r for _, r in granted["IngestFunction"])


def test_functions_join_the_vpc_only_when_subnets_are_given(transformed):
    for fn in of_type(transformed, "AWS::Lambda::Function").values():
        assert fn["Properties"]["VpcConfig"]["Fn::If"][0] == "InVpc"
    assert transformed["Conditions"]["InVpc"] == {
        "Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "SubnetIds"}]}, ""]}]
    }


def test_the_alarms_watch_drain_lag_backlog_dead_letters_and_errors(transformed, fanout_template):
    alarms = of_type(transformed, "AWS::CloudWatch::Alarm").values()
    watched = {a["Properties"]["MetricName"] for a in alarms if "MetricName" in a["Properties"]}
    assert watched == {
        "PersistenceLag", "Backlog", "DeadLettered", "Errors", "DatabaseMemoryUsagePercentage"
    }  # fmt: skip
    # And the worst partition's lag, which the totals can hide.
    (query,) = [a["Properties"]["Metrics"][0]["Expression"] for a in alarms
                if "Metrics" in a["Properties"]]  # fmt: skip
    assert "MAX(PersistenceLag)" in query and "partition" in query
    fanout = {
        a["Properties"]["MetricName"]
        for a in of_type(fanout_template, "AWS::CloudWatch::Alarm").values()
    }
    assert fanout == {"FanoutErrors", "UnHealthyHostCount"}


def test_outputs_give_the_api_and_websocket_urls(transformed):
    assert {"ApiUrl", "WebSocketUrl"} <= set(transformed["Outputs"])


def test_the_fanout_service_is_a_nested_stack_switched_by_a_parameter(transformed, template):
    (stack,) = of_type(transformed, "AWS::CloudFormation::Stack").values()
    assert stack["Condition"] == "WithFanout"
    assert template["Parameters"]["DeployFanout"]["Default"] == "false"
    location = template["Resources"]["FanoutService"]["Properties"]["Location"]
    assert (ROOT / location).exists()
    nested_params = set(template["Resources"]["FanoutService"]["Properties"]["Parameters"])
    declared = set(decode(ROOT / location)["Parameters"])
    assert nested_params <= declared


def test_the_load_balancer_outlives_the_ping_and_checks_healthz(fanout_template):
    resources = fanout_template["Resources"]
    attrs = {
        a["Key"]: a["Value"]
        for a in resources["LoadBalancer"]["Properties"]["LoadBalancerAttributes"]
    }
    ping = int(fanout_template["Parameters"]["PingIntervalSeconds"]["Default"])
    assert int(attrs["idle_timeout.timeout_seconds"]) > ping
    assert resources["TargetGroup"]["Properties"]["HealthCheckPath"] == "/healthz"
    scaling = resources["CpuScaling"]["Properties"]
    assert scaling["PolicyType"] == "TargetTrackingScaling"
    metric = scaling["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"]
    assert metric["PredefinedMetricType"] == "ECSServiceAverageCPUUtilization"
    task = resources["TaskDefinition"]["Properties"]
    assert task["RuntimePlatform"]["CpuArchitecture"] == "ARM64"
    (container,) = task["ContainerDefinitions"]
    # No secret injected at start: the container reads its own (see below).
    assert "Secrets" not in container


def test_the_fanout_health_path_is_the_one_the_server_answers():
    source = Path(ROOT / "fanout" / "server.py").read_text()
    assert '"/healthz"' in source


def test_samconfig_has_default_dev_and_prod_and_no_secret():
    import tomllib

    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    assert {"default", "dev", "prod"} <= set(config)
    for env in ("default", "dev", "prod"):
        deploy = config[env]["deploy"]["parameters"]
        # Nested applications (the fan-out stack) need CAPABILITY_AUTO_EXPAND.
        assert "CAPABILITY_AUTO_EXPAND" in deploy["capabilities"]
        overrides = deploy["parameter_overrides"]
        for secret in ("JwtSecret", "MongoUri", "MongoUrl", "RedisUrl", "password"):
            assert secret not in overrides, (env, secret)


def test_the_fanout_task_may_only_check_and_promote_uploads_and_read_its_secrets(fanout_template):
    """It checks a message's attachments with HEAD (s3:GetObject) under pending/
    and attachments/, copies a checked upload to attachments/ (s3:PutObject
    there only), and reads its two secrets, nothing else."""
    resources = fanout_template["Resources"]
    task = resources["TaskDefinition"]["Properties"]
    assert task["TaskRoleArn"] == {"Fn::GetAtt": ["TaskRole", "Arn"]}
    read, write, secrets, parameter = statements(resources["TaskRole"])
    assert secrets["Action"] == ["secretsmanager:GetSecretValue"]
    assert parameter["Action"] == ["ssm:GetParameter"]  # when the JWT secret is in SSM
    assert read["Action"] == ["s3:GetObject"]
    assert [r["Fn::Sub"].rsplit("}", 1)[1] for r in read["Resource"]] == [
        "/pending/*", "/attachments/*"
    ]  # fmt: skip
    assert write["Action"] == ["s3:PutObject"]
    assert write["Resource"]["Fn::Sub"].endswith("${AttachmentsBucket}/attachments/*")
    (container,) = task["ContainerDefinitions"]
    assert {"ATTACHMENTS_BUCKET", "ATTACHMENT_MAX_BYTES"} <= {e for e in container_env(container)}


def test_cloud_processes_run_in_production_mode_whatever_the_stage(template, fanout_template):
    """The mode never follows the stage name: a stack named `local` is no local stack."""
    assert re.fullmatch(template["Parameters"]["Stage"]["AllowedPattern"], "local")
    functions_env = template["Globals"]["Function"]["Environment"]["Variables"]
    for resource in of_type(template, "AWS::Serverless::Function").values():
        env = functions_env | resource["Properties"].get("Environment", {}).get("Variables", {})
        assert env["AURORA_ENV"] == "production"
    (container,) = fanout_template["Resources"]["TaskDefinition"]["Properties"][
        "ContainerDefinitions"
    ]
    fanout_env = container_env(container)
    assert fanout_env["AURORA_ENV"] == "production"
    # Both tiers sign and accept tokens of one issuer, named for this deployment.
    assert fanout_env["JWT_ISSUER"] == functions_env["JWT_ISSUER"]
    assert "${Stage}" in functions_env["JWT_ISSUER"]["Fn::Sub"]


# -- deployment defaults ---------------------------------------------------------


def test_the_fanout_reads_and_refreshes_its_secrets_as_the_functions_do(template, fanout_template):
    """The task names its secrets and the container reads them with aurora/secrets.py,
    refreshing the JWT secrets: ECS's injection would read a multi-line value as
    one key and freeze it at start, refusing every token after a rotation."""
    resources = fanout_template["Resources"]
    (container,) = resources["TaskDefinition"]["Properties"]["ContainerDefinitions"]
    env = container_env(container)
    assert "Secrets" not in container
    assert env["JWT_SECRET_ID"] == {"Ref": "JwtSecretArn"}
    assert env["JWT_SECRET_PARAMETER"] == {"Fn::Sub": "/${JwtSecretParameterName}"}
    assert env["REDIS_URL_SECRET_ID"] == {"Ref": "RedisUrlSecretArn"}
    assert not {"JWT_SECRET", "REDIS_URL"} & set(env)
    (*_, secrets, parameter) = statements(resources["TaskRole"])
    assert secrets["Resource"] == [
        {"Ref": "RedisUrlSecretArn"},
        {"Fn::If": ["UseJwtSecretArn", {"Ref": "JwtSecretArn"}, {"Ref": "AWS::NoValue"}]},
    ]
    assert parameter["Resource"]["Fn::Sub"].endswith(":parameter/${JwtSecretParameterName}")
    # Either JWT secret, as the functions take it; one of the two is required.
    assert refused(fanout_template, Stage="dev")
    assert not refused(fanout_template, Stage="dev", JwtSecretParameterName="aurorachat/jwt")
    assert statements(resources["ExecutionRole"]) == []
    functions_env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert functions_env["REDIS_URL_SECRET_ID"] == {"Ref": "RedisUrlSecretArn"}
    assert "REDIS_URL" not in functions_env and "RedisUrl" not in template["Parameters"]
    nested = template["Resources"]["FanoutService"]["Properties"]["Parameters"]
    assert nested["RedisUrlSecretArn"] == {"Ref": "RedisUrlSecretArn"}
    assert nested["JwtSecretParameterName"] == {"Ref": "JwtSecretParameterName"}


def evaluate(expression: Any, parameters: dict[str, str]) -> Any:
    """The few intrinsic functions CloudFormation's Rules use, evaluated."""
    if not isinstance(expression, dict):
        return expression
    ((function, argument),) = expression.items()
    if function == "Ref":
        return parameters[argument]
    values = [evaluate(a, parameters) for a in argument]
    return {
        "Fn::Equals": lambda: values[0] == values[1],
        "Fn::Not": lambda: not values[0],
        "Fn::And": lambda: all(values),
        "Fn::Or": lambda: any(values),
    }[function]()


def refused(template: dict[str, Any], **given: str) -> list[str]:
    """The rule assertions CloudFormation would fail for these parameter values."""
    parameters = {n: str(p.get("Default", "")) for n, p in template["Parameters"].items()}
    parameters.update(given)
    failed = []
    for rule in template.get("Rules", {}).values():
        if evaluate(rule.get("RuleCondition", True), parameters):
            failed += [
                a["AssertDescription"]
                for a in rule["Assertions"]
                if not evaluate(a["Assert"], parameters)
            ]
    return failed


def test_plain_ws_is_refused_outside_a_dev_stage(template, fanout_template):
    cert = "arn:aws:acm:us-east-1:123456789012:certificate/x"
    jwt = {"JwtSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt"}
    assert refused(fanout_template, Stage="prod", **jwt)
    assert refused(fanout_template, Stage="local", **jwt)
    assert not refused(fanout_template, Stage="prod", CertificateArn=cert, **jwt)
    assert not refused(fanout_template, Stage="dev", **jwt)
    assert refused(template, Stage="prod", DeployFanout="true")
    assert not refused(template, Stage="prod", DeployFanout="true", FanoutCertificateArn=cert)
    assert not refused(template, Stage="prod")  # no fan-out here, nothing to secure
    # With a certificate: TLS 1.2+ on 443, and port 80 only redirects there.
    resources = fanout_template["Resources"]
    https = resources["HttpsListener"]["Properties"]
    assert (https["Port"], https["Protocol"]) == (443, "HTTPS")
    with_tls, _ = resources["HttpListener"]["Properties"]["DefaultActions"]["Fn::If"][1:]
    assert [a["Type"] for a in with_tls] == ["redirect"]


def test_metrics_and_readiness_answer_404_on_the_public_listener(fanout_template):
    """The listener rule shadows them on whichever listener forwards to the tasks;
    the health check reaches /healthz on the task itself, past the listener."""
    resources = fanout_template["Resources"]
    rules = of_type(fanout_template, "AWS::ElasticLoadBalancingV2::ListenerRule")
    (rule,) = rules.values()
    props = rule["Properties"]
    assert props["ListenerArn"] == {
        "Fn::If": ["WithTls", {"Ref": "HttpsListener"}, {"Ref": "HttpListener"}]
    }
    (condition,) = props["Conditions"]
    assert condition["Field"] == "path-pattern"
    assert set(condition["PathPatternConfig"]["Values"]) == {"/metrics", "/readyz"}
    (action,) = props["Actions"]
    assert action["Type"] == "fixed-response"
    assert action["FixedResponseConfig"]["StatusCode"] == "404"
    health = resources["TargetGroup"]["Properties"]["HealthCheckPath"]
    assert health not in condition["PathPatternConfig"]["Values"]


@pytest.mark.parametrize(
    ("variable", "parameter"),
    [("STREAM_PARTITIONS", "StreamPartitions"), ("REDIS_REPLICA_ACKS", "RedisReplicaAcks")],
)
def test_senders_and_the_drain_get_one_value(template, fanout_template, variable, parameter):
    """The functions (Globals) and the fan-out tasks read STREAM_PARTITIONS
    from the same parameter: a mismatch would strand messages. Likewise what
    an acknowledgement means, whichever path changed the message."""
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env[variable] == {"Ref": parameter}
    nested = template["Resources"]["FanoutService"]["Properties"]["Parameters"]
    assert nested[parameter] == {"Ref": parameter}
    (task,) = of_type(fanout_template, "AWS::ECS::TaskDefinition").values()
    (container,) = task["Properties"]["ContainerDefinitions"]
    assert {"Name": variable, "Value": {"Ref": parameter}} in container["Environment"]


def test_redis_memory_is_alarmed_when_the_elasticache_node_is_named(transformed, template):
    """Redis runs noeviction: full means every write fails, so it is watched."""
    alarm = transformed["Resources"]["RedisMemoryAlarm"]
    assert alarm["Condition"] == "WithRedisMemoryAlarm"
    props = alarm["Properties"]
    assert props["Namespace"] == "AWS/ElastiCache"
    assert props["Dimensions"] == [
        {"Name": "CacheClusterId", "Value": {"Ref": "RedisCacheClusterId"}}
    ]
    assert props["TreatMissingData"] == "breaching"  # a Redis that stops reporting is news
    assert 50 <= template["Parameters"]["RedisMemoryAlarmPercent"]["Default"] <= 80


def test_every_route_throttle_names_a_deployed_route_and_the_costly_ones_are_set(template):
    api = template["Resources"]["HttpApi"]["Properties"]
    routes = {
        f"{e['Properties']['Method'].upper()} {e['Properties']['Path']}"
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Serverless::Function"
        for e in r["Properties"].get("Events", {}).values()
        if e["Type"] == "HttpApi"
    }
    throttled = api["RouteSettings"]
    assert set(throttled) <= routes  # a key naming no route fails the deployment
    assert {"POST /api/auth/login", "POST /api/auth/register", "GET /api/search"} <= set(throttled)
    default = api["DefaultRouteSettings"]["ThrottlingRateLimit"]
    # Login is never the weak point: a shared bucket one client could empty for everyone.
    assert throttled["POST /api/auth/login"]["ThrottlingRateLimit"] >= default
    assert throttled["GET /api/search"]["ThrottlingRateLimit"] < default


def test_an_optional_per_ip_rate_rule_guards_the_websocket_load_balancer(template, fanout_template):
    assert template["Parameters"]["EdgeRateLimitPerIp"]["Default"] == 0  # off: WAF costs money
    passed = template["Resources"]["FanoutService"]["Properties"]["Parameters"]
    assert passed["EdgeRateLimitPerIp"] == {"Ref": "EdgeRateLimitPerIp"}
    resources = fanout_template["Resources"]
    acl, association = resources["EdgeRateLimit"], resources["EdgeRateLimitAssociation"]
    assert acl["Condition"] == association["Condition"] == "WithEdgeRateLimit"
    assert fanout_template["Conditions"]["WithEdgeRateLimit"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "EdgeRateLimitPerIp"}, "0"]}]
    }
    (rule,) = acl["Properties"]["Rules"]
    assert rule["Action"] == {"Block": {}}
    rate = rule["Statement"]["RateBasedStatement"]
    assert rate == {"Limit": {"Ref": "EdgeRateLimitPerIp"}, "AggregateKeyType": "IP"}
    assert association["Properties"]["ResourceArn"] == {"Ref": "LoadBalancer"}


def test_uploads_nobody_posted_expire(template):
    rules = template["Resources"]["AttachmentsBucket"]["Properties"]["LifecycleConfiguration"]
    (pending,) = [r for r in rules["Rules"] if r.get("Prefix") == "pending/"]
    assert pending["Status"] == "Enabled" and pending["ExpirationInDays"] == 1
