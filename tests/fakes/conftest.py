from tests.fakes.fixtures import fake_anthropic  # noqa: F401
