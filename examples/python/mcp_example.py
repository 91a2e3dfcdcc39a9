"""An agent's flow through gitfleet's MCP tools: clone, write a file, push, release.

The gateway serves the tools at /mcp over Streamable HTTP; the API key (a producer's) goes in
the Authorization header of every request. Run it with the `mcp` package installed
(`pip install -r mcp-requirements.txt`):

    GITFLEET_URL=http://127.0.0.1:8080 GITFLEET_KEY=gfk_... REPO_URL=https://... \
        python mcp_example.py

It prints the tools it found, each step, and last `commit <sha>`; a tool error (its text is
{"kind", "message"}) ends it with a non-zero exit.
"""

import asyncio
import json
import os
import sys

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client


async def main() -> None:
    url = os.environ.get("GITFLEET_URL", "http://127.0.0.1:8080").rstrip("/") + "/mcp"
    key = os.environ["GITFLEET_KEY"]
    repo_url = os.environ["REPO_URL"]
    agent = os.environ.get("AGENT_ID", "py-mcp")
    task = os.environ.get("TASK_ID", "mcp-1")
    # Tool calls wait for their job (up to 120 s on the server): give them the time.
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=180)
    async with http, streamable_http_client(url, http_client=http) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            tools = await session.list_tools()
            print("tools:", " ".join(sorted(t.name for t in tools.tools)))

            async def call(name: str, arguments: dict) -> dict:
                result = await session.call_tool(name, arguments)
                text = result.content[0].text if result.content else "{}"
                if result.is_error:
                    error = json.loads(text)
                    sys.exit(f"{name} failed: {error.get('kind')}: {error.get('message')}")
                print(f"{name}: {text}")
                return json.loads(text)

            clone = await call(
                "git_clone",
                {"repo_url": repo_url, "agent_id": agent, "task_id": task},
            )
            sandbox = clone["sandbox_id"]
            try:
                await call(
                    "git_write_files",
                    {
                        "sandbox_id": sandbox,
                        "files": [{"path": "MCP.md", "content": "written through MCP\n"}],
                    },
                )
                pushed = await call(
                    "git_push",
                    {"sandbox_id": sandbox, "message": "Notes from the Python MCP client"},
                )
            finally:
                await call("git_release", {"sandbox_id": sandbox})
            print("commit", pushed["commit_sha"])


if __name__ == "__main__":
    asyncio.run(main())
