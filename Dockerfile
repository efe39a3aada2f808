# wharf in a container: `wharf start-all` (web UI, API, scheduler) on port 8080, with
# the DAGs in /var/lib/wharf/dags and the runs' records in /var/lib/wharf.
#
# The context is made by scripts/docker-image: `rootfs/` holds the wharf binary (and,
# for a base image without the GNU C library, the libraries it links). It builds offline.
#
#   scripts/docker-image                       # FROM debian:bookworm-slim, tag wharf:latest
#   scripts/docker-image --base wharf-test/base:latest --tag wharf-test/wharf:latest
ARG BASE=debian:bookworm-slim
FROM ${BASE}
COPY rootfs/ /
ENV WHARF_HOME=/var/lib/wharf \
    WHARF_DAGS=/var/lib/wharf/dags \
    WHARF_HOST=0.0.0.0 \
    WHARF_PORT=8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/wharf"]
CMD ["start-all"]
