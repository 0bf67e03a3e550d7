# Imaging Commons Archive: DICOMweb on 8080, DIMSE on 11112, data (files + embedded PostgreSQL) in /data.
# Stage 1 builds the wheel; stage 2 installs it (what users install, not an editable source tree).
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY archive ./archive
COPY dicomweb ./dicomweb
COPY dimse ./dimse
COPY storage ./storage
RUN pip wheel --no-cache-dir --no-deps -w /dist .

FROM python:3.11-slim-bookworm
RUN useradd --create-home --uid 1000 archive
COPY --from=build /dist /dist
RUN pip install --no-cache-dir /dist/*.whl && rm -rf /dist && mkdir /data && chown archive /data
USER archive
WORKDIR /home/archive
ENV ARCHIVE_HOST=0.0.0.0 ARCHIVE_DATA_DIR=/data
VOLUME /data
EXPOSE 8080 11112
STOPSIGNAL SIGTERM
CMD ["archive", "serve"]
