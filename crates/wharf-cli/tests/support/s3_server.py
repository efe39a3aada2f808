"""An S3-compatible server for the tests: moto's, on a loopback port it chooses, with its
request signatures checked (only keys made here sign). Makes a user with an access key
allowed everything and the bucket `wharf-test`, then prints "READY PORT KEY_ID SECRET"
on a line of its own and serves until killed."""

import json
import os

# Every request after the setup below must be signed with a key moto knows.
os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "4"

from urllib.parse import quote, unquote  # noqa: E402

import boto3  # noqa: E402
from moto.iam import access_control  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

# moto checks a signature against a decoded URL: a key's `é`, `+` or `%` and a `/` in a
# query value (`delimiter=/`, `prefix=a/`) are left as they are, where AWS, and every SDK
# signing for it, takes them encoded (`%C3%A9`, `%2B`, `%25`, `%2F`); boto3's own requests
# fail its check too. The check is given the path and query as AWS reads them.
_init = access_control.S3IAMRequest.__init__


def _aws_query(self, *args, **kwargs):
    path = kwargs.get("path", "")
    base, _, query = path.partition("?")
    base = quote(unquote(base), safe="/-_.~")
    if query:
        pairs = []
        for part in query.split("&"):
            key, _, value = part.partition("=")
            pairs.append(quote(unquote(key), safe="-_.~") + "=" + quote(unquote(value), safe="-_.~"))
        base += "?" + "&".join(pairs)
    kwargs["path"] = base
    _init(self, *args, **kwargs)


access_control.S3IAMRequest.__init__ = _aws_query

server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
server.start()
host, port = server.get_host_and_port()
endpoint = f"http://{host}:{port}"
anon = dict(
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id="setup",
    aws_secret_access_key="setup",
)
iam = boto3.client("iam", **anon)
iam.create_user(UserName="wharf")
key = iam.create_access_key(UserName="wharf")["AccessKey"]
iam.put_user_policy(
    UserName="wharf",
    PolicyName="all",
    PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    ),
)
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id=key["AccessKeyId"],
    aws_secret_access_key=key["SecretAccessKey"],
)
s3.create_bucket(Bucket="wharf-test")
print("READY", port, key["AccessKeyId"], key["SecretAccessKey"], flush=True)
import threading  # noqa: E402

threading.Event().wait()
