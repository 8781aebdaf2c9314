#!/usr/bin/env python3
"""Independent checks of what Weft wrote to a blob server, with the vendor SDKs
(azure-storage-blob for Azurite, boto3 for the S3 server). The e2e tests run it; it
prints one JSON document.

  blobcheck.py azure list CONTAINER PREFIX    every blob: size, sha256 metadata, the
                                              SHA-256 of its downloaded bytes, etag,
                                              last-modified, committed block count
  blobcheck.py azure wait-upload CONTAINER    prints "ready", then waits until some blob
                                              has uncommitted blocks
  blobcheck.py s3 list BUCKET PREFIX          the same for S3 (parts from head_object,
                                              or the multipart ETag's "-N")
  blobcheck.py s3 wait-upload BUCKET          prints "ready", then waits until a
                                              multipart upload has started
  blobcheck.py azure|s3 incomplete CONTAINER  the uploads left unfinished: blobs with
                                              uncommitted blocks, or open multipart
                                              uploads (name and count)

Connection settings come from the same environment variables Weft reads:
AZURITE_BLOB_STORAGE_URL (the emulator's well-known account) and AWS_ENDPOINT_URL,
AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY.
"""

import hashlib
import json
import os
import sys
import time

# Azurite's well-known development account (public, documented by Microsoft).
EMULATOR_ACCOUNT = "devstoreaccount1"
EMULATOR_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def sha256_of(chunks):
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def azure_container(name):
    from azure.storage.blob import BlobServiceClient

    url = os.environ["AZURITE_BLOB_STORAGE_URL"].rstrip("/") + "/" + EMULATOR_ACCOUNT
    service = BlobServiceClient(
        account_url=url,
        credential={"account_name": EMULATOR_ACCOUNT, "account_key": EMULATOR_KEY},
    )
    return service.get_container_client(name)


def azure_list(container, prefix):
    client = azure_container(container)
    blobs = []
    for props in client.list_blobs(name_starts_with=prefix, include=["metadata"]):
        blob = client.get_blob_client(props.name)
        committed, _ = blob.get_block_list("committed")
        blobs.append(
            {
                "name": props.name,
                "size": props.size,
                "sha256": (props.metadata or {}).get("sha256"),
                "content_sha256": sha256_of(blob.download_blob().chunks()),
                "etag": props.etag,
                "last_modified": props.last_modified.isoformat(),
                "parts": len(committed),
            }
        )
    return blobs


def azure_wait_upload(container, limit):
    client = azure_container(container)
    print("ready", flush=True)
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            for props in client.list_blobs(include=["uncommittedblobs"]):
                blob = client.get_blob_client(props.name)
                _, uncommitted = blob.get_block_list("uncommitted")
                if uncommitted:
                    return {"name": props.name, "uncommitted": len(uncommitted)}
        except Exception:  # The container may not exist yet.
            pass
        time.sleep(0.02)
    raise SystemExit(f"no upload in progress within {limit} s")


def azure_incomplete(container):
    client = azure_container(container)
    found = []
    for props in client.list_blobs(include=["uncommittedblobs"]):
        _, uncommitted = client.get_blob_client(props.name).get_block_list("uncommitted")
        if uncommitted:
            found.append({"name": props.name, "count": len(uncommitted)})
    return found


def s3_client():
    import boto3
    from botocore.handlers import set_list_objects_encoding_type_url

    client = boto3.client(
        "s3",
        endpoint_url=os.environ["AWS_ENDPOINT_URL"],
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
    )
    # boto3 asks for URL-encoded keys in listings and decodes them with unquote_plus; a
    # server that ignores the request (s3s-fs) would have every "+" read as a space.
    client.meta.events.unregister(
        "before-parameter-build.s3.ListObjectsV2", set_list_objects_encoding_type_url
    )
    return client


def etag_parts(etag):
    """The part count in a multipart upload's ETag ("...-N"), else 1."""
    _, dash, count = etag.strip('"').rpartition("-")
    return int(count) if dash and count.isdigit() else 1


def s3_list(bucket, prefix):
    s3 = s3_client()
    blobs = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            key = item["Key"]
            head = s3.head_object(Bucket=bucket, Key=key)
            # A HEAD of part 1 tells how many parts the object was uploaded in.
            first_part = s3.head_object(Bucket=bucket, Key=key, PartNumber=1)
            body = s3.get_object(Bucket=bucket, Key=key)["Body"]
            blobs.append(
                {
                    "name": key,
                    "size": item["Size"],
                    "sha256": head.get("Metadata", {}).get("sha256"),
                    "content_sha256": sha256_of(iter(lambda: body.read(1 << 20), b"")),
                    "etag": item.get("ETag", head["ETag"]),
                    "last_modified": item["LastModified"].isoformat(),
                    "parts": first_part.get("PartsCount") or etag_parts(head["ETag"]),
                }
            )
    return blobs


def s3_wait_upload(bucket, limit):
    s3 = s3_client()
    print("ready", flush=True)
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            # An upload that has started is enough: it is not complete yet.
            for upload in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
                return {"name": upload["Key"], "uncommitted": 0}
        except Exception:  # The bucket may not exist yet.
            pass
        time.sleep(0.02)
    raise SystemExit(f"no upload in progress within {limit} s")


def s3_incomplete(bucket):
    counts = {}
    for upload in s3_client().list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        counts[upload["Key"]] = counts.get(upload["Key"], 0) + 1
    return [{"name": name, "count": count} for name, count in sorted(counts.items())]


def main(argv):
    if len(argv) < 3:
        raise SystemExit(__doc__)
    backend, command, container = argv[0], argv[1], argv[2]
    rest = argv[3:]
    if (backend, command) == ("azure", "list"):
        result = azure_list(container, rest[0] if rest else "")
    elif (backend, command) == ("azure", "wait-upload"):
        result = azure_wait_upload(container, 120)
    elif (backend, command) == ("s3", "list"):
        result = s3_list(container, rest[0] if rest else "")
    elif (backend, command) == ("s3", "wait-upload"):
        result = s3_wait_upload(container, 120)
    elif (backend, command) == ("azure", "incomplete"):
        result = azure_incomplete(container)
    elif (backend, command) == ("s3", "incomplete"):
        result = s3_incomplete(container)
    else:
        raise SystemExit(__doc__)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
