"""What tests share, once: each module is named for what it holds, and test modules import from
here, never from one another. For example ``fakes`` (the fake AMI link, a manual clock),
``domain_events`` (event builders), ``live_calls`` (the server in-process, ``call_through_ivr``),
``ivr_script`` (a scripted IVR caller), ``routing_centre`` (tracker and router without a PBX)."""
