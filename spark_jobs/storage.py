"""Where the model files live: a local folder, or a URI that Spark's Hadoop file systems read.

``MODEL_DIR`` is a plain path (``/srv/models``) or a URI (``file:///shared/models``,
``hdfs://namenode/models``, ``s3a://bucket/models``, ``gs://bucket/models``). Spark ML saves
and loads its pipelines at either; this module does the same for the files we write
ourselves (the model card, the metrics), so one setting places the whole model folder:

- a plain path is read and written as local files, by this process;
- a URI goes through the Hadoop ``FileSystem`` of the active SparkSession, with the
  session's Hadoop configuration (credentials, endpoints, the connector jars), exactly as
  ``PipelineModel.save``/``load`` reach it.

Locations are strings, never :class:`pathlib.Path`: ``Path("file:///x")`` collapses the
slashes into a different, relative path.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spark_jobs.errors import SparkJobError

if TYPE_CHECKING:
    from collections.abc import Iterator

# `scheme://`: one letter then letters, digits, +, - or . (RFC 3986). A Windows drive
# (C:\) has no `//` and stays a path.
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

Location = str | os.PathLike[str]


class StorageError(SparkJobError):
    """A model file cannot be read or written at its location; the message says where."""


def is_uri(location: Location) -> bool:
    """Whether ``location`` is a URI (``scheme://...``) rather than a local path."""
    return bool(_URI.match(os.fspath(location)))


def join(location: Location, *parts: str) -> str:
    """``location`` with ``parts`` appended, as a path or a URI like ``location``."""
    base = os.fspath(location)
    if not is_uri(base):
        return os.path.join(base, *parts)
    return "/".join([base.rstrip("/"), *(part.strip("/") for part in parts)])


def hadoop_uri(location: Location) -> str:
    """``location`` as Spark's Hadoop file systems should read it: a URI as it is, a path
    as a ``file://`` URI.

    Spark resolves a bare path against the cluster's default file system (``hdfs://`` on
    many clusters), while a bare path means a local folder here.
    """
    text = os.fspath(location)
    if is_uri(text):
        return text
    # Not Path.as_uri(): it percent-encodes (a space becomes %20), and Hadoop's Path takes
    # the escapes literally.
    return "file://" + os.path.abspath(text)


def write_text(location: Location, text: str) -> None:
    """Write ``text`` (UTF-8) to the file at ``location``, replacing it; create its folder.

    Raises:
        StorageError: the file cannot be written there.
    """
    if not is_uri(location):
        path = Path(location)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise StorageError(f"cannot write {path}: {exc.strerror}") from exc
        return
    with _hadoop_errors("write", location):
        fs, path = _hadoop_file(os.fspath(location))
        # `create` makes the missing parent folders, as mkdir(parents=True) does above.
        out = fs.create(path, True)
        try:
            out.write(bytearray(text.encode("utf-8")))
        finally:
            out.close()


def read_text(location: Location) -> str:
    """The UTF-8 text of the file at ``location``.

    Raises:
        StorageError: the file is missing or cannot be read.
    """
    if not is_uri(location):
        try:
            return Path(location).read_text(encoding="utf-8")
        except OSError as exc:
            raise StorageError(f"cannot read {os.fspath(location)}: {exc.strerror}") from exc
    with _hadoop_errors("read", location):
        fs, path = _hadoop_file(os.fspath(location))
        stream = fs.open(path)
        try:
            io = _session().sparkContext._jvm.org.apache.hadoop.io
            data: bytes = io.IOUtils.readFullyToByteArray(stream)
        finally:
            stream.close()
    return bytes(data).decode("utf-8")


def is_file(location: Location) -> bool:
    """Whether ``location`` is an existing file.

    Raises:
        StorageError: the file system cannot be reached (a URI only).
    """
    if not is_uri(location):
        return Path(location).is_file()
    return _status(location, "isFile")


def is_dir(location: Location) -> bool:
    """Whether ``location`` is an existing folder.

    Raises:
        StorageError: the file system cannot be reached (a URI only).
    """
    if not is_uri(location):
        return Path(location).is_dir()
    return _status(location, "isDirectory")


def _status(location: Location, kind: str) -> bool:
    with _hadoop_errors("look up", location):
        fs, path = _hadoop_file(os.fspath(location))
        if not fs.exists(path):
            return False
        return bool(getattr(fs.getFileStatus(path), kind)())


def _session() -> Any:
    from pyspark.sql import SparkSession

    # The session Spark ML's own save and load use: the one the job started.
    spark = SparkSession.getActiveSession()
    if spark is None:
        raise StorageError("a MODEL_DIR URI is reached through Spark: no SparkSession is running")
    return spark


def _hadoop_file(location: str) -> tuple[Any, Any]:
    """The Hadoop ``FileSystem`` serving ``location`` and its ``Path``."""
    spark = _session()
    path = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(location)
    return path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), path


@contextmanager
def _hadoop_errors(action: str, location: Location) -> Iterator[None]:
    """Translate the JVM's exceptions (no file system for the scheme, no credentials, a
    missing file) into :class:`StorageError`, naming the location and the Java cause."""
    from py4j.protocol import Py4JJavaError

    try:
        yield
    except Py4JJavaError as exc:
        cause = _java_cause(exc)
        hint = ""
        if "FileSystem" in cause and ("ClassNotFound" in cause or "Unsupported" in cause):
            hint = (
                ": put the scheme's Hadoop connector on the classpath of the driver and every "
                "executor (hadoop-aws for s3a://, gcs-connector for gs://: spark.jars.packages)"
            )
        raise StorageError(f"cannot {action} {os.fspath(location)}: {cause}{hint}") from exc


def _java_cause(exc: Any) -> str:
    """The innermost Java exception's class and message, on one line."""
    throwable = exc.java_exception
    while throwable.getCause() is not None:
        throwable = throwable.getCause()
    return str(throwable.toString()).splitlines()[0]
