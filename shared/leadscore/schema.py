"""The base of the product's pydantic models.

`Model` builds a class's validator and serializer on its first use instead of when the class is
defined (`defer_build`): a Lambda imports every model its package defines, but each request uses
a few of them, so a cold start pays only for those. A model nested in another is built with it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    model_config = ConfigDict(defer_build=True)
