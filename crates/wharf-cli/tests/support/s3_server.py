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

# moto checks a signature against the query of a decoded URL, where a `/` in a value
# (`delimiter=/`, `prefix=a/`) is left as it is; AWS, and every SDK signing for it, takes
# it encoded (`%2F`). The check is given the query as AWS reads it.
_init = access_control.S3IAMRequest.__init__


def _aws_query(self, *args, **kwargs):
    path = kwargs.get("path", "")
    if "?" in path:
        base, query = path.split("?", 1)
        pairs = []
        for part in query.split("&"):
            key, _, value = part.partition("=")
            pairs.append(quote(unquote(key), safe="-_.~") + "=" + quote(unquote(value), safe="-_.~"))
        kwargs["path"] = base + "?" + "&".join(pairs)
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
