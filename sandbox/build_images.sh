#!/usr/bin/env bash
# Build the sandbox images, cached and idempotent.
#
#   sandbox/build_images.sh [py311|bigcodebench|all]      (default: py311)
#
# Images:
#   calib-sandbox-base:bookworm   debootstrap'ed minimal Debian bookworm + python3, `docker import`ed
#                                 (only when the official python:3.11-slim cannot be had)
#   calib-sandbox:py311           default (MBPP) image: plain python3, user 10001
#   calib-sandbox:bigcodebench    + BigCodeBench's library set
#
# Each image carries a label calib.sandbox.hash = sha256 of the files it was built from; when an image
# with that tag and hash exists, the step is skipped (a no-op run takes well under a second).
# Env: CALIB_SANDBOX_BASE=auto|official|debootstrap (default auto: official if pullable within
# 20 s, else debootstrap); DEBIAN_MIRROR (default http://deb.debian.org/debian); PIP_CA_BUNDLE
# (default: pip's configured cert, else /etc/ssl/certs/ca-certificates.crt); PIP_INDEX_URL,
# HTTP(S)_PROXY pass through to the BigCodeBench build.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PROFILE="${1:-py311}"
BASE_MODE="${CALIB_SANDBOX_BASE:-auto}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
BASE_TAG="calib-sandbox-base:bookworm"
OFFICIAL="python:3.11-slim"

log() { echo "[build_images] $*" >&2; }
hash_of() { cat "$@" | sha256sum | cut -c1-16; }
label_of() { docker image inspect --format '{{ index .Config.Labels "calib.sandbox.hash" }}' "$1" 2>/dev/null || true; }

docker info >/dev/null 2>&1 || { log "docker daemon not reachable (run scripts/setup_docker.sh)"; exit 1; }

ensure_base() {
  # prints the base image reference to build FROM
  local want; want="bookworm-minbase-python3-$(echo "$MIRROR" | sha256sum | cut -c1-8)-v1"
  if [[ "$BASE_MODE" != debootstrap ]]; then
    if docker image inspect "$OFFICIAL" >/dev/null 2>&1; then echo "$OFFICIAL"; return; fi
    # auto: a debootstrap base built earlier is reused without probing the registry again
    if [[ "$BASE_MODE" == auto && "$(label_of "$BASE_TAG")" == "$want" ]]; then echo "$BASE_TAG"; return; fi
    if [[ "$BASE_MODE" == official ]] || timeout 20 docker pull -q "$OFFICIAL" >/dev/null 2>&1; then
      docker image inspect "$OFFICIAL" >/dev/null 2>&1 || { log "cannot pull $OFFICIAL"; exit 1; }
      echo "$OFFICIAL"; return
    fi
    log "no registry reachable for $OFFICIAL: using debootstrap"
  fi
  if [[ "$(label_of "$BASE_TAG")" == "$want" ]]; then echo "$BASE_TAG"; return; fi
  command -v debootstrap >/dev/null || { log "debootstrap missing: apt-get install -y debootstrap"; exit 1; }
  local t0=$SECONDS root; root="$(mktemp -d /var/tmp/calib-rootfs.XXXXXX)"
  log "debootstrap bookworm ($MIRROR) into $root ..."
  debootstrap --variant=minbase --include=python3,ca-certificates bookworm "$root" "$MIRROR" >&2
  # slim it: no apt lists/caches, docs, man pages, locales
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
         "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/log/*.log
  find "$root"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name 'en*' -exec rm -rf {} + 2>/dev/null || true
  tar -C "$root" -c . | docker import \
      --change "LABEL calib.sandbox.hash=$want" --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'CMD ["python3"]' - "$BASE_TAG" >/dev/null
  rm -rf "$root"
  log "base $BASE_TAG imported in $((SECONDS - t0)) s"
  echo "$BASE_TAG"
}

build() {  # build TAG DOCKERFILE BASE [extra args...]
  local tag=$1 dockerfile=$2 base=$3; shift 3
  local base_id; base_id="$(docker image inspect --format '{{.Id}}' "$base")"
  local want; want="$(cat "$HERE/$dockerfile" <(echo "$base_id") "$@" 2>/dev/null | sha256sum | cut -c1-16)"
  [[ $dockerfile == Dockerfile.bigcodebench ]] && want="$(cat "$HERE/$dockerfile" "$HERE/requirements-bigcodebench.txt" "$HERE/install_nltk_data.py" <(echo "$base_id") | sha256sum | cut -c1-16)"
  if [[ "$(label_of "$tag")" == "$want" ]]; then log "$tag up to date ($want)"; return; fi
  local ctx; ctx="$(mktemp -d)"
  cp "$HERE/$dockerfile" "$ctx/Dockerfile"
  local args=(--build-arg "BASE=$base" --label "calib.sandbox.hash=$want" -t "$tag")
  if [[ $dockerfile == Dockerfile.bigcodebench ]]; then
    cp "$HERE/requirements-bigcodebench.txt" "$HERE/install_nltk_data.py" "$ctx/"
    local ca="${PIP_CA_BUNDLE:-$(python3 -m pip config get global.cert 2>/dev/null || true)}"
    [[ -f "$ca" ]] || ca=/etc/ssl/certs/ca-certificates.crt
    cp "$ca" "$ctx/pip-ca.crt"
    [[ -n "${PIP_INDEX_URL:-}" && "$PIP_INDEX_URL" != file:* ]] && args+=(--build-arg "PIP_INDEX_URL=$PIP_INDEX_URL")
    for v in HTTP_PROXY HTTPS_PROXY NO_PROXY; do
      val="${!v:-$(eval echo "\${${v,,}:-}")}"; [[ -n "$val" ]] && args+=(--build-arg "$v=$val")
    done
    args+=(--network host)
  fi
  local t0=$SECONDS
  log "building $tag from $dockerfile on $base ..."
  DOCKER_BUILDKIT=0 docker build -q "${args[@]}" "$ctx" >&2
  rm -rf "$ctx"
  log "built $tag in $((SECONDS - t0)) s"
}

case "$PROFILE" in
  py311|mbpp) base="$(ensure_base)"; build calib-sandbox:py311 Dockerfile "$base" ;;
  bigcodebench) base="$(ensure_base)"; build calib-sandbox:py311 Dockerfile "$base"
                build calib-sandbox:bigcodebench Dockerfile.bigcodebench calib-sandbox:py311 ;;
  all) base="$(ensure_base)"; build calib-sandbox:py311 Dockerfile "$base"
       build calib-sandbox:bigcodebench Dockerfile.bigcodebench calib-sandbox:py311 ;;
  *) log "unknown profile $PROFILE (py311|bigcodebench|all)"; exit 2 ;;
esac
