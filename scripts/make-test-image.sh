#!/bin/sh
# make-test-image.sh OUT — busybox-static test images for the runtime tests.
#
#   OUT/rootfs/      a root filesystem directory (busybox and its applets)
#   OUT/oci/         an OCI image layout: layer 1 = that rootfs (tar+gzip),
#                    layer 2 = a small uncompressed layer that adds
#                    /etc/layer2, deletes /etc/removed-by-layer2 (whiteout)
#                    and makes /opq opaque (its /opq/a disappears, /opq/b
#                    appears); config Env PATH=/bin, IMAGE_VAR=from-image
#   OUT/oci.tar      the same layout as a tar (OCI archive)
#   OUT/docker.tar   the same layers as a `docker save` archive
#
# Deterministic and idempotent: when OUT/.stamp matches (script version and
# busybox binary) nothing is done; otherwise everything is rebuilt in a
# temporary directory and moved into place. Installs busybox-static with
# apt-get when no static busybox is found (needs root).
set -eu

out=${1:?usage: make-test-image.sh OUT}
VERSION=2

is_static() {
    [ -x "$1" ] && ! LC_ALL=C ldd "$1" >/dev/null 2>&1
}

bb=
for cand in /usr/bin/busybox /bin/busybox /usr/lib/busybox-static/busybox; do
    if is_static "$cand"; then
        bb=$cand
        break
    fi
done
if [ -z "$bb" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "make-test-image: installing busybox-static" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q busybox-static >/dev/null
    fi
    for cand in /usr/bin/busybox /bin/busybox; do
        is_static "$cand" && bb=$cand && break
    done
fi
if [ -z "$bb" ]; then
    echo "make-test-image: no static busybox (apt-get install busybox-static)" >&2
    exit 1
fi

stamp="$VERSION $(sha256sum "$bb" | cut -c1-64)"
if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp" ]; then
    exit 0
fi

case $(uname -m) in
x86_64) arch=amd64 ;;
aarch64) arch=arm64 ;;
*) arch=$(uname -m) ;;
esac

mkdir -p "$(dirname "$out")"
tmp=$(mktemp -d "$out.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

mktar() { # mktar DIR OUT
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$1" -cf "$2" .
}
sha() { sha256sum "$1" | cut -c1-64; }
size() { wc -c <"$1" | tr -d ' '; }

# --- the root filesystem
r=$tmp/rootfs
mkdir -p "$r/bin" "$r/etc" "$r/proc" "$r/sys" "$r/dev" "$r/tmp" "$r/root" "$r/opq"
cp "$bb" "$r/bin/busybox"
for applet in $("$bb" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$r/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\nstep:x:1000:1000:step:/:/bin/sh\n' >"$r/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\nstep:x:1000:\n' >"$r/etc/group"
echo base >"$r/etc/removed-by-layer2"
echo a >"$r/opq/a"
chmod 1777 "$r/tmp"
chmod 700 "$r/root"

# --- layer 2: additions and whiteouts
l2=$tmp/l2
mkdir -p "$l2/etc" "$l2/opq"
echo "from layer 2" >"$l2/etc/layer2"
: >"$l2/etc/.wh.removed-by-layer2"
: >"$l2/opq/.wh..wh..opq"
echo b >"$l2/opq/b"

mktar "$r" "$tmp/layer1.tar"
mktar "$l2" "$tmp/layer2.tar"
gzip -n -9 <"$tmp/layer1.tar" >"$tmp/layer1.tar.gz"
d1=$(sha "$tmp/layer1.tar")
d1gz=$(sha "$tmp/layer1.tar.gz")
d2=$(sha "$tmp/layer2.tar")

printf '{"architecture":"%s","os":"linux","config":{"Env":["PATH=/bin","IMAGE_VAR=from-image"],"Cmd":["sh","-c","echo default-cmd"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s","sha256:%s"]}}' \
    "$arch" "$d1" "$d2" >"$tmp/config.json"
dc=$(sha "$tmp/config.json")

# --- OCI layout
o=$tmp/oci
mkdir -p "$o/blobs/sha256"
cp "$tmp/config.json" "$o/blobs/sha256/$dc"
cp "$tmp/layer1.tar.gz" "$o/blobs/sha256/$d1gz"
cp "$tmp/layer2.tar" "$o/blobs/sha256/$d2"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s},{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
    "$dc" "$(size "$tmp/config.json")" "$d1gz" "$(size "$tmp/layer1.tar.gz")" \
    "$d2" "$(size "$tmp/layer2.tar")" >"$tmp/manifest.json"
dm=$(sha "$tmp/manifest.json")
cp "$tmp/manifest.json" "$o/blobs/sha256/$dm"
printf '{"imageLayoutVersion":"1.0.0"}' >"$o/oci-layout"
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}' \
    "$dm" "$(size "$tmp/manifest.json")" >"$o/index.json"
mktar "$o" "$tmp/oci.tar"

# --- docker save
dk=$tmp/docker
mkdir -p "$dk/$d1" "$dk/$d2"
cp "$tmp/layer1.tar" "$dk/$d1/layer.tar"
cp "$tmp/layer2.tar" "$dk/$d2/layer.tar"
cp "$tmp/config.json" "$dk/$dc.json"
printf '[{"Config":"%s.json","RepoTags":["drover-test:latest"],"Layers":["%s/layer.tar","%s/layer.tar"]}]' \
    "$dc" "$d1" "$d2" >"$dk/manifest.json"
printf '{"drover-test":{"latest":"%s"}}' "$dc" >"$dk/repositories"
mktar "$dk" "$tmp/docker.tar"

# --- into place
mkdir -p "$out"
rm -rf "$out/rootfs" "$out/oci" "$out/oci.tar" "$out/docker.tar" "$out/.stamp"
mv "$r" "$out/rootfs"
mv "$o" "$out/oci"
mv "$tmp/oci.tar" "$out/oci.tar"
mv "$tmp/docker.tar" "$out/docker.tar"
echo "$stamp" >"$out/.stamp"
