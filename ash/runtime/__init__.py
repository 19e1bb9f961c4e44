"""The agent runtime that runs inside every sandbox (`python -m ash.runtime`).

It speaks the bridge protocol (`protocol`) on stdin/stdout and drives an engine: the native
agent loop on the Messages API (`engines.native`, through `model_client`) or, optionally, the
Claude Code CLI (`engines.claude_code`). Django-free by design; the runner side is
`client.RuntimeClient`.
"""
