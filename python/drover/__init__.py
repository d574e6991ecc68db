"""drover: a Python client for drover-web's REST API and a way to write
pipelines in Python.

    import drover

    p = drover.Pipeline("hello", params={"who": "world"})
    greet = p.step("greet", env={"WHO": p.params["who"]}, script='echo "hello $WHO"',
                   output_params=["said"])
    p.step("shout", env={"S": greet.outputs["said"]}, script='echo "$S!"')  # needs: [greet]
    print(p.to_yaml())

    c = drover.Client("http://127.0.0.1:7080", token="drva1....")
    run = c.wait(c.submit(p))
    print(run["status"])          # "succeeded"

Standard library only (urllib, json, tarfile). See README "Python client".
"""
from .client import FINAL_RUN, Client, safe_extract_tar
from .errors import (BadRequest, Conflict, DroverError, InvalidSpec, NotFound, PermissionDenied,
                     RateLimited, SpecProblem, Unauthenticated, Unavailable)
from .main import main
from .pipeline import DagTemplate, Pipeline, Ref, StepHandle, TemplateHandle, item, range_items
from .yamlemit import dump as to_yaml

__all__ = [
    "Client", "FINAL_RUN", "safe_extract_tar", "DroverError", "BadRequest", "InvalidSpec",
    "Unauthenticated", "PermissionDenied", "NotFound", "Conflict", "RateLimited", "Unavailable",
    "SpecProblem", "Pipeline", "DagTemplate", "StepHandle", "TemplateHandle", "Ref", "item",
    "range_items", "to_yaml", "main",
]

__version__ = "0.19.0"
