"""Identity: one whole-match username rule, tokens scoped to their deployment,
and settings that refuse a weak bcrypt cost or the development secret in the cloud."""

import time

import jwt
import pytest

from aurora import accounts, secrets, tokens, users
from aurora.errors import AuthenticationError, ConfigurationError, ValidationError
from aurora.settings import LOCAL_DEV_SECRET, Settings

SECRET = "identity-test-secret-" + "0123456789abcdef" * 4
GOOD_SECRET = "a-production-secret-that-is-long-enough-0123456789"
SETTINGS = Settings(env="local", jwt_secret=SECRET)

# Each renders like "alice" or hides a character; `$` alone accepted the first.
LOOK_ALIKES = [
    "alice\n",
    "alice\r\n",
    "alice\t",
    "alice ",
    "al\x00ice",
    "al\u200bice",  # zero-width space
    "alice\u2060",  # word joiner
    "\u202eecila",  # right-to-left override
    "\uff41lice",  # fullwidth a
    "\u0430lice",  # Cyrillic a
]


@pytest.mark.parametrize("name", LOOK_ALIKES)
def test_a_name_with_a_control_invisible_or_look_alike_character_is_refused(name):
    assert not users.is_valid_username(name)
    with pytest.raises(ValidationError) as refused:
        accounts.Registration(username=name, password="securepass123")
    assert refused.value.code == "invalid_username"


@pytest.mark.parametrize("name", ["alice", "Bob_2", "x.y-z", "abc", "a" * 32])
def test_ordinary_names_keep_the_rule(name):
    assert users.check_username(name) == name
    assert accounts.Registration(username=name, password="securepass123").username == name


@pytest.mark.parametrize("name", ["ab", "a" * 33, "", None, 42])
def test_names_of_the_wrong_length_or_type_break_the_rule(name):
    assert not users.is_valid_username(name)


@pytest.mark.parametrize("name", ["alice\n", "al\u200bice", "x"])
def test_a_token_whose_username_breaks_the_rule_is_refused(name):
    token = tokens.issue_token("u1", name, SETTINGS)
    with pytest.raises(AuthenticationError):
        tokens.verify_token(token, SETTINGS)


# -- issuer and audience ---------------------------------------------------------


def _signed(payload: dict, secret: str = SECRET) -> str:
    claims = {"userId": "u1", "username": "alice", "iat": int(time.time()), "exp": 2**40,
              "jti": "j1"} | payload  # fmt: skip
    return jwt.encode(claims, secret, algorithm="HS256", headers={"kid": tokens.key_id(secret)})


def test_a_token_names_its_issuer_and_audience():
    ours = Settings(env="local", jwt_secret=SECRET, jwt_issuer="aurorachat/prod")
    payload = jwt.decode(
        tokens.issue_token("u1", "alice", ours),
        SECRET,
        algorithms=["HS256"],
        audience="aurorachat",
    )
    assert (payload["iss"], payload["aud"]) == ("aurorachat/prod", "aurorachat")


def test_a_token_of_another_deployment_sharing_the_secret_is_refused():
    prod = Settings(env="prod", jwt_secret=GOOD_SECRET, jwt_issuer="aurorachat/prod")
    staging = Settings(env="prod", jwt_secret=GOOD_SECRET, jwt_issuer="aurorachat/staging")
    with pytest.raises(AuthenticationError):
        tokens.verify_token(tokens.issue_token("u1", "alice", staging), prod)
    assert tokens.verify_token(tokens.issue_token("u1", "alice", prod), prod).username == "alice"


@pytest.mark.parametrize(
    "scope",
    [
        {"iss": "elsewhere", "aud": "aurorachat"},
        {"iss": "aurorachat", "aud": "elsewhere"},
        {"iss": "aurorachat", "aud": ["elsewhere"]},
        {"iss": "aurorachat"},  # one claim without the other is never "unscoped"
        {"aud": "aurorachat"},
    ],
)
@pytest.mark.parametrize("accept_unscoped", [True, False])
def test_a_wrong_or_half_missing_issuer_or_audience_is_always_refused(scope, accept_unscoped):
    settings = Settings(env="local", jwt_secret=SECRET, jwt_accept_unscoped=accept_unscoped)
    with pytest.raises(AuthenticationError) as refused:
        tokens.verify_token(_signed(scope), settings)
    assert refused.value.code == "invalid_token"


def test_an_unscoped_token_from_before_the_claims_is_accepted_only_while_allowed():
    unscoped = _signed({})
    assert tokens.verify_token(unscoped, SETTINGS).username == "alice"
    strict = Settings(env="local", jwt_secret=SECRET, jwt_accept_unscoped=False)
    with pytest.raises(AuthenticationError):
        tokens.verify_token(unscoped, strict)


def test_an_unscoped_token_still_expires_and_still_needs_its_claims():
    with pytest.raises(AuthenticationError) as expired:
        tokens.verify_token(_signed({"iat": 1, "exp": 2}), SETTINGS)
    assert expired.value.code == "token_expired"
    no_jti = jwt.encode({"userId": "u1", "username": "alice", "iat": 1, "exp": 2**40}, SECRET)
    with pytest.raises(AuthenticationError):
        tokens.verify_token(no_jti, SETTINGS)


def test_the_scope_settings_are_read_from_the_environment():
    settings = Settings.from_env(
        {
            "AURORA_ENV": "local",
            "JWT_ISSUER": "aurorachat/x",
            "JWT_AUDIENCE": "chat",
            "JWT_ACCEPT_UNSCOPED": "false",
        }
    )
    assert (settings.jwt_issuer, settings.jwt_audience) == ("aurorachat/x", "chat")
    assert settings.jwt_accept_unscoped is False


# -- bcrypt cost -------------------------------------------------------------------


@pytest.mark.parametrize("rounds", ["4", "9"])
def test_a_bcrypt_cost_below_10_is_refused_outside_local_mode(rounds):
    with pytest.raises(ConfigurationError, match="BCRYPT_ROUNDS"):
        Settings.from_env(
            {"AURORA_ENV": "prod", "JWT_SECRET": GOOD_SECRET, "BCRYPT_ROUNDS": rounds}
        )


def test_local_mode_may_use_a_low_bcrypt_cost_for_speed():
    assert Settings.from_env({"AURORA_ENV": "local", "BCRYPT_ROUNDS": "4"}).bcrypt_rounds == 4
    prod = Settings.from_env(
        {"AURORA_ENV": "prod", "JWT_SECRET": GOOD_SECRET, "BCRYPT_ROUNDS": "10"}
    )
    assert prod.bcrypt_rounds == 10


# -- the development secret in the cloud ------------------------------------------

CLOUD_RUNTIMES = [
    {"AWS_LAMBDA_FUNCTION_NAME": "aurorachat-auth"},
    {"AWS_EXECUTION_ENV": "AWS_Lambda_python3.12"},
    {"ECS_CONTAINER_METADATA_URI_V4": "http://169.254.170.2/v4/abc"},
    {"ECS_CONTAINER_METADATA_URI": "http://169.254.170.2/v3/abc"},
    {"AWS_EXECUTION_ENV": "AWS_ECS_FARGATE"},
]


@pytest.mark.parametrize("runtime", CLOUD_RUNTIMES)
@pytest.mark.parametrize("mode", ["local", "dev", "production"])
def test_the_development_secret_is_refused_on_lambda_or_ecs_whatever_the_mode(runtime, mode):
    with pytest.raises(ConfigurationError, match="development secret"):
        Settings.from_env({"AURORA_ENV": mode, **runtime})
    with pytest.raises(ConfigurationError, match="development secret"):
        Settings.from_env({"AURORA_ENV": mode, "JWT_SECRET": LOCAL_DEV_SECRET, **runtime})


@pytest.mark.parametrize("runtime", CLOUD_RUNTIMES)
def test_local_mode_in_the_cloud_still_runs_with_a_real_secret(runtime):
    settings = Settings.from_env({"AURORA_ENV": "local", "JWT_SECRET": GOOD_SECRET, **runtime})
    assert settings.is_local and settings.jwt_secret == GOOD_SECRET


@pytest.mark.parametrize("elsewhere", [{}, {"AWS_EXECUTION_ENV": "CloudShell"}])
def test_outside_lambda_and_ecs_local_mode_keeps_the_development_secret(elsewhere):
    assert Settings.from_env({"AURORA_ENV": "local", **elsewhere}).jwt_secret == LOCAL_DEV_SECRET


def test_a_stored_development_secret_is_refused_on_lambda_even_in_local_mode(monkeypatch):
    monkeypatch.setattr(secrets, "_fetch_jwt_secrets", lambda _settings: (LOCAL_DEV_SECRET,))
    settings = Settings(env="local", jwt_secret_id="arn:aws:secretsmanager:us-east-1:1:secret:j")
    assert secrets.jwt_secrets(settings) == (LOCAL_DEV_SECRET,)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "aurorachat-auth")
    with pytest.raises(ConfigurationError, match="development secret"):
        secrets.jwt_secrets(settings)
