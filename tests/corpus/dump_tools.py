#!/usr/bin/env python3
"""Dumps the REAL tool definitions (and a few real, harmless tool results) of published MCP
servers as benign corpus cases for `mcpsoc eval`.

It speaks MCP over stdio with the official Python client SDK (`mcp`): initialize, tools/list,
and for a handful of read-only tools a tools/call inside a scratch sandbox. Every case records
the server's package@version in `server`.

How it was run (outside the repository, nothing of this lands in git but this script and its
output):

    mkdir -p /tmp/corpus-npm && cd /tmp/corpus-npm && npm init -y
    PUPPETEER_SKIP_DOWNLOAD=1 npm install @modelcontextprotocol/server-everything \
        @modelcontextprotocol/server-filesystem @modelcontextprotocol/server-memory \
        @modelcontextprotocol/server-sequential-thinking @modelcontextprotocol/server-github \
        @modelcontextprotocol/server-puppeteer @modelcontextprotocol/server-slack \
        @modelcontextprotocol/server-brave-search @modelcontextprotocol/server-google-maps \
        @modelcontextprotocol/server-postgres @modelcontextprotocol/server-gitlab \
        @playwright/mcp @notionhq/notion-mcp-server @upstash/context7-mcp chrome-devtools-mcp
    python3 -m venv /tmp/corpus-venv
    /tmp/corpus-venv/bin/pip install mcp mcp-server-fetch mcp-server-git mcp-server-time
    /tmp/corpus-venv/bin/python tests/corpus/dump_tools.py /tmp/corpus-npm /tmp/corpus-venv \
        > /tmp/benign_real.jsonl

The output lines were then appended to tests/corpus/tools.jsonl. Servers that need an API
token are started with an obviously fake one ("dummy"): tools/list does not use it, and no
tool of theirs is called. No network is needed.
"""

import asyncio
import json
import os
import subprocess
import sys
import tempfile

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

NPM = sys.argv[1] if len(sys.argv) > 1 else "/tmp/corpus-npm"
VENV = sys.argv[2] if len(sys.argv) > 2 else "/tmp/corpus-venv"
# "main" for tools.jsonl, "holdout" for the servers of holdout.jsonl (a second npm install).
SET = sys.argv[3] if len(sys.argv) > 3 else "main"
SANDBOX = tempfile.mkdtemp(prefix="mcp-corpus-sandbox-")


def npm_version(package):
    with open(os.path.join(NPM, "node_modules", package, "package.json")) as f:
        return json.load(f)["version"]


def pip_version(package):
    out = subprocess.run(
        [os.path.join(VENV, "bin", "pip"), "show", package], capture_output=True, text=True
    ).stdout
    for line in out.splitlines():
        if line.startswith("Version:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def npm_server(package, *args, env=None):
    with open(os.path.join(NPM, "node_modules", package, "package.json")) as f:
        bin_field = json.load(f)["bin"]
    entry = bin_field if isinstance(bin_field, str) else list(bin_field.values())[0]
    script = os.path.join(NPM, "node_modules", package, entry)
    return (f"{package}@{npm_version(package)}", "node", [script, *args], env or {})


def pip_server(package, *args, env=None):
    """A PyPI server started by its console script (bin/<package> in the venv)."""
    script = os.path.join(VENV, "bin", package)
    return (f"{package}@{pip_version(package)}", script, list(args), env or {})


def make_sandbox():
    """A small project tree and git repository for the read-only calls."""
    os.makedirs(os.path.join(SANDBOX, "src"), exist_ok=True)
    os.makedirs(os.path.join(SANDBOX, "docs"), exist_ok=True)
    files = {
        "README.md": "# inventory-service\n\nA small service that tracks warehouse stock.\n\n"
        "## Running\n\n```\nmake run\n```\n\nSet `DATABASE_URL` before starting; see docs/setup.md.\n",
        "src/main.py": "import os\n\n\ndef main():\n    url = os.environ.get(\"DATABASE_URL\")\n"
        "    if not url:\n        raise SystemExit(\"DATABASE_URL is not set\")\n"
        "    print(\"connecting to\", url.split(\"@\")[-1])\n\n\nif __name__ == \"__main__\":\n    main()\n",
        "docs/setup.md": "# Setup\n\n1. Create a database user with a strong password.\n"
        "2. Export DATABASE_URL.\n3. Never commit credentials to the repository; use your secret manager.\n",
        "notes.txt": "Release checklist:\n- bump version\n- update CHANGELOG\n- tag and push\n",
    }
    for rel, text in files.items():
        with open(os.path.join(SANDBOX, rel), "w") as f:
            f.write(text)
    git = ["git", "-C", SANDBOX, "-c", "user.name=Dev", "-c", "user.email=dev@example.com"]
    subprocess.run(git + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "Initial import of inventory service"], check=True)
    with open(os.path.join(SANDBOX, "notes.txt"), "a") as f:
        f.write("- announce in #releases\n")
    subprocess.run(git + ["commit", "-q", "-am", "Add announcement step to checklist"], check=True)


def servers():
    dummy = "dummy-not-a-real-token"
    return [
        (npm_server("@modelcontextprotocol/server-everything"), [("echo", {"message": "Hello from the corpus dump"}), ("get-sum", {"a": 17, "b": 25})]),
        (npm_server("@modelcontextprotocol/server-filesystem", SANDBOX), [
            ("list_directory", {"path": SANDBOX}),
            ("read_text_file", {"path": os.path.join(SANDBOX, "README.md")}),
            ("read_text_file", {"path": os.path.join(SANDBOX, "src/main.py")}),
            ("read_text_file", {"path": os.path.join(SANDBOX, "docs/setup.md")}),
            ("directory_tree", {"path": SANDBOX}),
            ("search_files", {"path": SANDBOX, "pattern": "*.md"}),
            ("get_file_info", {"path": os.path.join(SANDBOX, "notes.txt")}),
        ]),
        (npm_server("@modelcontextprotocol/server-memory", env={"MEMORY_FILE_PATH": os.path.join(SANDBOX, "memory.jsonl")}), [
            ("create_entities", {"entities": [{"name": "Alice", "entityType": "person", "observations": ["Works on the billing team", "Prefers email over chat"]}]}),
            ("read_graph", {}),
        ]),
        (npm_server("@modelcontextprotocol/server-sequential-thinking"), [
            ("sequentialthinking", {"thought": "First, list the failing tests and group them by module.", "nextThoughtNeeded": True, "thoughtNumber": 1, "totalThoughts": 3}),
        ]),
        (npm_server("@modelcontextprotocol/server-github", env={"GITHUB_PERSONAL_ACCESS_TOKEN": dummy}), []),
        (npm_server("@modelcontextprotocol/server-gitlab", env={"GITLAB_PERSONAL_ACCESS_TOKEN": dummy}), []),
        (npm_server("@modelcontextprotocol/server-puppeteer"), []),
        (npm_server("@modelcontextprotocol/server-slack", env={"SLACK_BOT_TOKEN": dummy, "SLACK_TEAM_ID": "T00000000"}), []),
        (npm_server("@modelcontextprotocol/server-brave-search", env={"BRAVE_API_KEY": dummy}), []),
        (npm_server("@modelcontextprotocol/server-google-maps", env={"GOOGLE_MAPS_API_KEY": dummy}), []),
        (npm_server("@modelcontextprotocol/server-postgres", "postgresql://localhost:1/none"), []),
        (npm_server("@playwright/mcp"), []),
        (npm_server("@notionhq/notion-mcp-server", env={"NOTION_TOKEN": dummy}), []),
        (npm_server("@upstash/context7-mcp"), []),
        (npm_server("chrome-devtools-mcp"), []),
        (pip_server("mcp-server-fetch"), []),
        (pip_server("mcp-server-git", "--repository", SANDBOX), [
            ("git_status", {"repo_path": SANDBOX}),
            ("git_log", {"repo_path": SANDBOX, "max_count": 5}),
            ("git_show", {"repo_path": SANDBOX, "revision": "HEAD"}),
        ]),
        (pip_server("mcp-server-time", "--local-timezone", "Europe/Paris"), [
            ("convert_time", {"source_timezone": "Europe/Paris", "time": "14:30", "target_timezone": "America/New_York"}),
        ]),
    ]


def holdout_servers():
    """Servers never used for tuning: their real definitions are holdout.jsonl's benign set.

        mkdir -p /tmp/corpus-npm2 && cd /tmp/corpus-npm2 && npm init -y
        npm install @modelcontextprotocol/server-everart @modelcontextprotocol/server-aws-kb-retrieval \\
            @modelcontextprotocol/server-redis @stripe/mcp @supabase/mcp-server-supabase \\
            @heroku/mcp-server @sentry/mcp-server @browsermcp/mcp @hubspot/mcp-server
        python tests/corpus/dump_tools.py /tmp/corpus-npm2 /tmp/corpus-venv holdout
    """
    dummy = "dummy-not-a-real-token"
    return [
        (npm_server("@modelcontextprotocol/server-everart", env={"EVERART_API_KEY": dummy}), []),
        (npm_server("@modelcontextprotocol/server-aws-kb-retrieval", env={"AWS_ACCESS_KEY_ID": dummy, "AWS_SECRET_ACCESS_KEY": dummy, "AWS_REGION": "us-east-1"}), []),
        (npm_server("@modelcontextprotocol/server-redis", "redis://127.0.0.1:1"), []),
        (npm_server("@stripe/mcp", "--tools=all", f"--api-key=sk_test_{dummy}"), []),
        (npm_server("@supabase/mcp-server-supabase", f"--access-token={dummy}"), []),
        (npm_server("@heroku/mcp-server", env={"HEROKU_API_KEY": dummy}), []),
        (npm_server("@sentry/mcp-server", f"--access-token={dummy}"), []),
        (npm_server("@browsermcp/mcp"), []),
        (npm_server("@hubspot/mcp-server", env={"PRIVATE_APP_ACCESS_TOKEN": dummy}), []),
    ]


def slug(text):
    return "".join(c if c.isalnum() else "-" for c in text).strip("-").lower()


def result_text(result):
    parts = []
    for item in result.content:
        text = getattr(item, "text", None)
        if text:
            parts.append(text)
    return "\n".join(parts)


async def dump_one(spec, calls, out):
    (server, command, args, extra_env) = spec
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.path.join(SANDBOX, "home")}
    env.update(extra_env)
    params = StdioServerParameters(command=command, args=args, env=env, cwd=SANDBOX)
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            tools = (await session.list_tools()).tools
            for tool in tools:
                obj = tool.model_dump(by_alias=True, exclude_none=True, mode="json")
                out.append({
                    "id": f"benign-tool-{slug(server.split('@')[-2] or server)}-{slug(tool.name)}",
                    "kind": "tool_definition", "label": "benign", "family": None,
                    "server": server, "tool": obj, "text": None, "arguments": None,
                    "note": "real definition from tools/list",
                })
            instructions = getattr(init, "instructions", None)
            if instructions:
                out.append({
                    "id": f"benign-instructions-{slug(server.split('@')[-2] or server)}",
                    "kind": "tool_result", "label": "benign", "family": None,
                    "server": server, "tool": {"name": "(initialize.instructions)"},
                    "text": instructions, "arguments": None,
                    "note": "server instructions from initialize: model-directed but benign",
                })
            for n, (name, arguments) in enumerate(calls):
                result = await session.call_tool(name, arguments)
                text = result_text(result).replace(SANDBOX, "/home/dev/inventory-service")
                shown_args = json.loads(json.dumps(arguments).replace(SANDBOX, "/home/dev/inventory-service"))
                out.append({
                    "id": f"benign-result-{slug(server.split('@')[-2] or server)}-{slug(name)}-{n}",
                    "kind": "tool_result", "label": "benign", "family": None,
                    "server": server, "tool": {"name": name}, "text": text,
                    "arguments": shown_args, "note": "real result of tools/call in a scratch sandbox",
                })


async def main():
    make_sandbox()
    os.makedirs(os.path.join(SANDBOX, "home"), exist_ok=True)
    for spec, calls in (holdout_servers() if SET == "holdout" else servers()):
        out = []
        try:
            await asyncio.wait_for(dump_one(spec, calls, out), timeout=120)
        except Exception as e:  # report and go on with the next server
            print(f"{spec[0]}: {type(e).__name__}: {e}", file=sys.stderr)
        print(f"{spec[0]}: {len(out)} cases", file=sys.stderr)
        for case in out:
            print(json.dumps(case, ensure_ascii=False))


if __name__ == "__main__":
    asyncio.run(main())
