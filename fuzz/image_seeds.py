#!/usr/bin/env python3
"""Write the seeds of fuzz_image (fuzz/fuzz_image.c) into tests/fuzz/image/.

    python3 fuzz/image_seeds.py [DIR]

An input is one selector byte and then either a layer blob (even: the
harness wraps it in a one-layer OCI layout) or an image archive (odd). The
layers are small tars built with Python's tarfile: the shapes real images
have (directories, files, symlinks, hard links, OCI whiteouts and opaque
directories, long names in pax and GNU headers; plain, gzip, and zstd when
the zstd program is there) and the hostile ones the unpacker refuses ("..",
absolute paths, writing through a symlink, hard links out, device nodes,
whiteouts of ".."). The archives are an OCI layout and a docker-save tar
around such a layer. Deterministic: the same files every run.
"""
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile

LAYER, ARCHIVE = b"\x00", b"\x01"
# No padding to 10 KiB records: the two end blocks are enough, and small
# seeds fuzz faster.
tarfile.RECORDSIZE = tarfile.BLOCKSIZE


def info(name, kind=tarfile.REGTYPE, data=b"", link="", mode=0o644, dev=(0, 0)):
    t = tarfile.TarInfo(name)
    t.type = kind
    t.mode = 0o755 if kind == tarfile.DIRTYPE else mode
    t.mtime = 0
    t.linkname = link
    t.size = len(data) if kind == tarfile.REGTYPE else 0
    t.devmajor, t.devminor = dev
    return t, data


def tar(entries, fmt=tarfile.PAX_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for t, data in entries:
            tf.addfile(t, io.BytesIO(data) if t.size else None)
    return buf.getvalue()


def gz(data):
    return gzip.compress(data, mtime=0)


def zstd(data):
    if not shutil.which("zstd"):
        return None
    return subprocess.run(["zstd", "-q", "-c"], input=data, stdout=subprocess.PIPE,
                          check=True).stdout


def sha(data):
    return hashlib.sha256(data).hexdigest()


BASE = [
    info("./", tarfile.DIRTYPE),
    info("./bin", tarfile.DIRTYPE),
    info("./bin/busybox", data=b"\x7fELF not really\n", mode=0o755),
    info("./bin/sh", tarfile.SYMTYPE, link="busybox"),
    info("./bin/ls", tarfile.LNKTYPE, link="./bin/busybox"),
    info("./etc", tarfile.DIRTYPE),
    info("./etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\nstep:x:1000:1000::/:/bin/sh\n"),
    info("./etc/group", data=b"root:x:0:\n"),
    info("./etc/.wh.removed"),
    info("./opq", tarfile.DIRTYPE),
    info("./opq/.wh..wh..opq"),
    info("./opq/b", data=b"b\n"),
    info("./tmp", tarfile.DIRTYPE, mode=0o1777),
    info("./usr/lib/" + "long-directory-name/" * 8 + "file", data=b"deep\n"),
    info("./fifo", tarfile.FIFOTYPE),
]

HOSTILE = {
    "dotdot": [info("../../../../canary/x", data=b"pwned\n")],
    "dotdot-inner": [info("a", tarfile.DIRTYPE), info("a/../../../../../canary/x", data=b"p\n")],
    "absolute": [info("/tmp/drover-fuzz-absolute", data=b"pwned\n")],
    "symlink-through": [info("lnk", tarfile.SYMTYPE, link="../../../../canary"),
                        info("lnk/secret", data=b"pwned\n")],
    "symlink-abs-through": [info("etc", tarfile.SYMTYPE, link="/etc"),
                            info("etc/drover-fuzz", data=b"pwned\n")],
    "hardlink-shadow": [info("shadow", tarfile.LNKTYPE, link="/etc/shadow")],
    "hardlink-dotdot": [info("s", tarfile.LNKTYPE, link="../../../../canary/secret")],
    "hardlink-via-symlink": [info("e", tarfile.SYMTYPE, link="/etc"),
                             info("s", tarfile.LNKTYPE, link="e/shadow")],
    "devices": [info("dev", tarfile.DIRTYPE),
                info("dev/sda", tarfile.BLKTYPE, dev=(8, 0)),
                info("dev/mem", tarfile.CHRTYPE, dev=(1, 1)),
                info("dev/whiteout-like", tarfile.CHRTYPE, dev=(0, 0))],
    "whiteout-dotdot": [info("a", tarfile.DIRTYPE), info("a/.wh.."), info(".wh..")],
    "whiteout-empty": [info(".wh.")],
}


def oci_archive(layer):
    cfg = json.dumps({"architecture": "amd64", "os": "linux",
                      "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"], "User": "step"},
                      "rootfs": {"type": "layers", "diff_ids": ["sha256:" + sha(layer)]}}).encode()
    man = json.dumps({"schemaVersion": 2,
                      "config": {"digest": "sha256:" + sha(cfg), "size": len(cfg)},
                      "layers": [{"digest": "sha256:" + sha(layer), "size": len(layer)}]}).encode()
    index = json.dumps({"schemaVersion": 2,
                        "manifests": [{"digest": "sha256:" + sha(man), "size": len(man)}]}).encode()
    return tar([info("oci-layout", data=b'{"imageLayoutVersion":"1.0.0"}'),
                info("index.json", data=index),
                info("blobs", tarfile.DIRTYPE), info("blobs/sha256", tarfile.DIRTYPE),
                info("blobs/sha256/" + sha(cfg), data=cfg),
                info("blobs/sha256/" + sha(man), data=man),
                info("blobs/sha256/" + sha(layer), data=layer)], fmt=tarfile.USTAR_FORMAT)


def docker_archive(layer):
    lid = sha(layer)
    cfg = json.dumps({"config": {"Env": ["A=1"], "Entrypoint": ["/bin/sh"]},
                      "rootfs": {"type": "layers", "diff_ids": ["sha256:" + lid]}}).encode()
    man = json.dumps([{"Config": sha(cfg) + ".json", "Layers": ["l2/layer.tar"]}]).encode()
    return tar([info("manifest.json", data=man), info(sha(cfg) + ".json", data=cfg),
                info(lid, tarfile.DIRTYPE), info(lid + "/layer.tar", data=layer),
                info("l2", tarfile.DIRTYPE),
                info("l2/layer.tar", tarfile.SYMTYPE, link="../" + lid + "/layer.tar")],
               fmt=tarfile.GNU_FORMAT)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fuzz", "image")
    os.makedirs(out, exist_ok=True)
    seeds = {}
    base = tar(BASE)
    seeds["layer-plain"] = LAYER + base
    seeds["layer-gnu"] = LAYER + tar(BASE, fmt=tarfile.GNU_FORMAT)
    seeds["layer-gzip"] = LAYER + gz(base)
    z = zstd(base)
    if z:
        seeds["layer-zstd"] = LAYER + z
    seeds["layer-empty"] = LAYER
    seeds["layer-end-blocks-only"] = LAYER + b"\0" * 1024
    for name, entries in HOSTILE.items():
        seeds["layer-hostile-" + name] = LAYER + tar(entries)
    seeds["archive-oci"] = ARCHIVE + oci_archive(base)
    seeds["archive-oci-gzip-layer"] = ARCHIVE + oci_archive(gz(base))
    seeds["archive-docker"] = ARCHIVE + docker_archive(base)
    seeds["archive-oci-hostile"] = ARCHIVE + oci_archive(tar(HOSTILE["symlink-through"]))
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print("image_seeds: %d seeds in %s" % (len(seeds), out))


if __name__ == "__main__":
    main()
