#!/usr/bin/env python3
"""Writes examples/hello: a tiny two-platform OCI image layout (linux/amd64, linux/arm64), the
kind `docker buildx build --output type=oci` produces. Deterministic: same bytes every run."""
import gzip, hashlib, io, json, os, sys, tarfile

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "examples", "hello")
blobs = os.path.join(out, "blobs", "sha256")
os.makedirs(blobs, exist_ok=True)

def put(data: bytes):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, digest), "wb") as f:
        f.write(data)
    return "sha256:" + digest, len(data)

def layer(files):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, content in files:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(content), 0, 0o644
            tar.addfile(info, io.BytesIO(content))
    diff_id = "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()
    compressed = gzip.compress(raw.getvalue(), mtime=0)
    return put(compressed), diff_id

def dumps(obj):
    return json.dumps(obj, separators=(",", ":")).encode()

manifests = []
shared, shared_diff = layer([("etc/hello/README", b"wharf example image\n")])
for arch in ["amd64", "arm64"]:
    own, own_diff = layer([("hello.txt", f"hello from linux/{arch}\n".encode())])
    config = put(dumps({
        "architecture": arch, "os": "linux",
        "config": {"Cmd": ["/bin/cat", "/hello.txt"]},
        "rootfs": {"type": "layers", "diff_ids": [shared_diff, own_diff]},
    }))
    manifest = put(dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config[0], "size": config[1]},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": s}
            for d, s in (shared, own)
        ],
    }))
    manifests.append({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": manifest[0], "size": manifest[1],
        "platform": {"architecture": arch, "os": "linux"},
    })
index = put(dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests}))
with open(os.path.join(out, "index.json"), "wb") as f:
    f.write(dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": index[0], "size": index[1],
        "annotations": {"org.opencontainers.image.ref.name": "v1"},
    }]}) + b"\n")
with open(os.path.join(out, "oci-layout"), "w") as f:
    f.write('{"imageLayoutVersion":"1.0.0"}')
print(index[0])
