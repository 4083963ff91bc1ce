"""ctypes objects in shared memory (not in gomp yet)."""
from ._missing import missing_function

__all__ = ["RawValue", "RawArray", "Value", "Array", "copy", "synchronized"]

RawValue = missing_function("sharedctypes.RawValue")
RawArray = missing_function("sharedctypes.RawArray")
Value = missing_function("sharedctypes.Value")
Array = missing_function("sharedctypes.Array")
copy = missing_function("sharedctypes.copy")
synchronized = missing_function("sharedctypes.synchronized")
