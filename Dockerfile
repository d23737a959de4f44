# syntax=docker/dockerfile:1
# skiff node agent image: one DaemonSet container that runs `skiff agent`, plus the static CNI shim that
# the install-cni init container copies to the host's /opt/cni/bin.
#
# Reproducible builds: the dependency tree comes from package-lock.json (`npm ci`), and the base images
# can be pinned by digest at build time without editing this file:
#   docker build \
#     --build-arg BUILD_IMAGE=node:22-bookworm@sha256:<digest> \
#     --build-arg RUNTIME_IMAGE=node:22-bookworm-slim@sha256:<digest> -t skiff:dev .
# (`docker buildx imagetools inspect node:22-bookworm-slim` prints the current digest.) Debian packages
# are not version-pinned: bookworm is a stable release that only takes security fixes. For identical
# layer timestamps add --build-arg SOURCE_DATE_EPOCH="$(git log -1 --format=%ct)" (BuildKit).
ARG BUILD_IMAGE=node:22-bookworm
ARG RUNTIME_IMAGE=node:22-bookworm-slim

# --- build: TypeScript to dist/, and the CNI shim as a static binary (the host may have any libc) ---
FROM ${BUILD_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build \
 && if [ -f cni/shim/skiff-cni.c ]; then \
      gcc -std=gnu11 -O2 -Wall -Wextra -static -s -o dist/bin/skiff-cni cni/shim/skiff-cni.c; \
    fi

# --- deps: production node_modules only, resolved on the runtime base so prebuilt addons match its libc ---
FROM ${RUNTIME_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# --- runtime ---
FROM ${RUNTIME_IMAGE}
# nftables/iptables: Service proxy backends; iproute2: links, routes, VXLAN FDB; conntrack: flush stale
# UDP flows when endpoints change; tini: PID 1 that forwards SIGTERM and reaps the nft/ip/nsenter
# children. nsenter (entering pod network namespaces) comes with util-linux, already in the base.
# npm, corepack and yarn are not needed at run time: less to ship and less to patch.
RUN apt-get update \
 && apt-get install -y --no-install-recommends nftables iptables iproute2 conntrack tini \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log \
 && rm -rf /usr/local/lib/node_modules /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack \
           /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-*
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY --from=build /src/dist ./dist
LABEL org.opencontainers.image.title="skiff" \
      org.opencontainers.image.description="Overlay CNI, nftables Service proxy and cluster DNS in one DaemonSet" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV NODE_ENV=production
# Runs as root: programming nftables, links and pod namespaces needs NET_ADMIN/SYS_ADMIN, which the
# DaemonSet grants explicitly (and only those) instead of running privileged.
# node's flags: AGENT_NODE_FLAGS in common/self.ts (the sandbox and the footprint bench use them too;
# common/self.test.ts keeps the two equal).
ENTRYPOINT ["/usr/bin/tini", "--", "node", "--max-semi-space-size=2", "/app/dist/bin/skiff.js"]
CMD ["agent"]
