from llm_gateway.local_engine import engine_environment


def test_engine_environment_keeps_nothing_the_engine_would_read_as_settings():
    env = engine_environment(
        {
            "PATH": "/bin",
            "HOME": "/root",
            "PORT": "8000",
            "API_KEY": "s",
            "MODEL": "x",
            "HOST": "0.0.0.0",
        }
    )
    assert env == {"PATH": "/bin", "HOME": "/root"}
