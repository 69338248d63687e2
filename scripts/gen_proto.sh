#!/usr/bin/env bash
# Regenerate fedcore/wire/party_pb2*.py from fedcore/wire/party.proto (needs grpcio-tools).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m grpc_tools.protoc -I fedcore/wire \
  --python_out=fedcore/wire --pyi_out=fedcore/wire --grpc_python_out=fedcore/wire \
  fedcore/wire/party.proto
# protoc writes a top-level import; make it package-relative.
sed -i 's/^import party_pb2 as party__pb2$/from fedcore.wire import party_pb2 as party__pb2/' \
  fedcore/wire/party_pb2_grpc.py
echo "regenerated fedcore/wire/party_pb2.py, party_pb2.pyi, party_pb2_grpc.py"
