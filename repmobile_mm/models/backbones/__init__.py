from .repmobile import RepMobile, RepMobileBlock

__all__ = ['RepMobile', 'RepMobileBlock']
