# syntax=docker/dockerfile:1
# The ipvsctl image: `ipvsctl agent` for the Helm chart (charts/ipvsctl runs ghcr.io/ipvsctl/ipvsctl:<appVersion>),
# and the inspection commands (`ipvsctl show`, `diff`, `affinity`, `cleanup`) for `kubectl exec`.
#
#   docker build -t ghcr.io/ipvsctl/ipvsctl:0.1.0 --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) .
#
# tests/test_image.py builds and installs the same wheel in a clean venv and checks this file's stages.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: the project's wheel and a wheel for each dependency -------------------------------------------
FROM ${PYTHON_IMAGE} AS builder
WORKDIR /src
# Only what the wheel is built from (.dockerignore keeps the rest of the tree out of the context).
COPY pyproject.toml README.md ./
COPY ipvsctl/ ipvsctl/
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
 && python -m pip wheel --no-cache-dir --wheel-dir /wheels /wheels/ipvsctl-*.whl

# --- runtime: a venv with the wheels and nothing to build with ----------------------------------------------
FROM ${PYTHON_IMAGE}
ARG PYTHON_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="ipvsctl" \
      org.opencontainers.image.description="IPVS load-balancer node agent for Kubernetes" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/ipvsctl/ipvsctl" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

# kmod: `modprobe` for the chart's optional module loading (modules.load); the agent itself never loads modules.
# nftables: `nft`, which writes the definition of the agent's own nftables table (the netfilter half).
RUN apt-get update \
 && apt-get install -y --no-install-recommends kmod nftables \
 && rm -rf /var/lib/apt/lists/*

# The venv has no pip of its own: the base image's pip installs into it, offline, from the builder's wheels only,
# which are bind-mounted for this step and never stored in a layer.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv --without-pip /opt/ipvsctl \
 && python -m pip --python /opt/ipvsctl/bin/python install --no-cache-dir --no-index --find-links /wheels ipvsctl

ENV PATH=/opt/ipvsctl/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# Root, on purpose. The agent programs IPVS and its dummy interface over netlink in the host's network
# namespace, which needs CAP_NET_ADMIN in the effective set. Kubernetes cannot ask for ambient capabilities:
# for a non-root user the runtime puts the granted ones in the bounding set only, so the agent would run without
# it. File capabilities on the interpreter would give NET_ADMIN to every Python program in the image, and
# no_new_privs (the chart's allowPrivilegeEscalation: false) ignores them anyway. So the image runs as uid 0
# and the chart drops every capability but NET_ADMIN, with a read-only root filesystem and no privilege
# escalation (charts/ipvsctl/README.md).
USER 0:0
ENTRYPOINT ["ipvsctl"]
CMD ["agent"]
