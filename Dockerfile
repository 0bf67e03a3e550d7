# Imaging Commons Archive: DICOMweb on 8080, DIMSE on 11112, data (files + embedded PostgreSQL) in /data.
FROM python:3.11-slim-bookworm
RUN useradd --create-home --uid 1000 archive
WORKDIR /app
COPY pyproject.toml README.md ./
COPY archive ./archive
COPY dicomweb ./dicomweb
COPY dimse ./dimse
COPY storage ./storage
COPY migrations ./migrations
RUN pip install --no-cache-dir -e .
USER archive
ENV ARCHIVE_HOST=0.0.0.0 ARCHIVE_DATA_DIR=/data
VOLUME /data
EXPOSE 8080 11112
STOPSIGNAL SIGTERM
CMD ["archive", "serve"]
