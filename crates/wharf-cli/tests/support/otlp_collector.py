"""An OTLP trace receiver for the tests: the OpenTelemetry project's own protobuf
definitions (opentelemetry-proto) served over gRPC (grpcio) and over HTTP, on loopback
ports it chooses. Each request received is written to the file named by argv[1] as one
JSON line: {"via": "grpc"|"http", "headers": {...}, "request": ExportTraceServiceRequest}.
Prints "GRPC_PORT HTTP_PORT" once both listen."""

import json
import sys
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

OUT = sys.argv[1]
LOCK = threading.Lock()


def record(via, headers, request):
    line = json.dumps({"via": via, "headers": headers, "request": MessageToDict(request)})
    with LOCK, open(OUT, "a") as f:
        f.write(line + "\n")


class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def Export(self, request, context):
        record("grpc", {k: v for k, v in context.invocation_metadata()}, request)
        return trace_service_pb2.ExportTraceServiceResponse()


class Traces(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path != "/v1/traces" or self.headers.get("Content-Type") != "application/x-protobuf":
            self.send_response(404)
            self.end_headers()
            return
        request = trace_service_pb2.ExportTraceServiceRequest()
        request.ParseFromString(body)
        record("http", {k.lower(): v for k, v in self.headers.items()}, request)
        answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TraceService(), server)
grpc_port = server.add_insecure_port("127.0.0.1:0")
server.start()
http = ThreadingHTTPServer(("127.0.0.1", 0), Traces)
print(grpc_port, http.server_address[1], flush=True)
http.serve_forever()
