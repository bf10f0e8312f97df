"""NannyML, imported once: without usage telemetry and without the Spark JVM flaml would start.

Every module that needs NannyML takes it from here
(``from monitoring.compute.nannyml_loader import nml``), so importing the `monitoring`
package itself stays light.

NannyML 0.13 imports flaml, and flaml 2.7, finding PySpark installed (the Spark jobs need it),
imports ``pyspark.pandas`` and reads one of its options at import time. That starts a local Spark
JVM: about 6 s and several hundred MB in a process that never uses Spark. Hiding
``pyspark.pandas`` for the duration of the import sends flaml down its "no Spark" path; the
module is importable again as soon as NannyML is loaded, and a process that already imported it
is left as it is.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType
from typing import Any

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")

_SPARK_PANDAS = "pyspark.pandas"


def _import_nannyml() -> ModuleType:
    hide = _SPARK_PANDAS not in sys.modules
    if hide:
        # A None entry makes `import pyspark.pandas` raise ImportError, which flaml handles.
        sys.modules[_SPARK_PANDAS] = None  # type: ignore[assignment]
    try:
        import nannyml
    finally:
        if hide:
            del sys.modules[_SPARK_PANDAS]
    return nannyml


nml = _import_nannyml()
# The classes this package extends, typed: NannyML ships no type information.
Chunk: Any = nml.chunk.Chunk
Chunker: Any = nml.chunk.Chunker
