"""Real SIP user agents for tests and demos: a SIPp test caller and a baresip softphone."""

from hotline.sipua.softphone import Softphone, SoftphoneError
from hotline.sipua.testcall import CallResult, place_call

__all__ = ["CallResult", "Softphone", "SoftphoneError", "place_call"]
